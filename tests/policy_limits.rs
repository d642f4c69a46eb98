//! Manifest size limits: the largest manifests allowed compile (and decide correctly), one step
//! beyond any limit is refused with a typed error. Nothing here measures time: see
//! `benches/policy.rs` (`compile/*`) for that.

use fieldseal::*;

const PURPOSES: usize = 5;

fn header(purposes: usize) -> String {
    let mut t = String::from("version = 1\nhome_region = \"CN\"\n");
    for p in 0..purposes {
        t.push_str(&format!(
            "[purposes.p{p}]\nlegal_basis = \"contract\"\nretention_days = 30\n"
        ));
    }
    t
}

/// `roles` roles in inheritance chains of `chain` roles (`r{i}` inherits `r{i-1}` within a
/// chain, so each chain has depth `chain - 1`), each granting itself reveal on one kind for one
/// purpose.
fn chains(roles: usize, chain: usize) -> String {
    let mut t = header(PURPOSES);
    for i in 0..roles {
        t.push_str(&format!("[roles.r{i}]\n"));
        if i % chain != 0 {
            t.push_str(&format!("inherits = [\"r{}\"]\n", i - 1));
        }
        t.push_str(&format!(
            "[roles.r{i}.grants.p{}]\nreveal = [\"{}\"]\n",
            i % PURPOSES,
            FieldKind::ALL[i % FieldKind::ALL.len()].label()
        ));
    }
    t
}

fn lint_errors(text: &str) -> Vec<LintError> {
    match Manifest::from_toml(text) {
        Err(ManifestError::Lint(v)) => v,
        other => panic!("expected lint errors, got {other:?}"),
    }
}

fn allowed(policy: &ManifestPolicy, role: usize, grant_of: usize) -> bool {
    let acc = Accessor::new("t", [Role::new(&format!("r{role}"))]);
    let purpose = format!("p{}", grant_of % PURPOSES);
    let req = AccessRequest {
        accessor: &acc,
        purpose: &purpose,
        kind: FieldKind::ALL[grant_of % FieldKind::ALL.len()],
        action: Action::Reveal,
    };
    policy.decide(&req) == Decision::Allow
}

#[test]
fn largest_allowed_manifest_compiles_and_decides() {
    // MAX_ROLES roles, every chain at the maximum depth, under the byte limit.
    let chain = MAX_INHERITANCE_DEPTH + 1;
    let text = chains(MAX_ROLES, chain);
    assert!(text.len() <= MAX_MANIFEST_BYTES, "{} bytes", text.len());
    let policy = ManifestPolicy::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.manifest().roles().count(), MAX_ROLES);
    // The last role of the first chain holds the grant of the chain's root, 64 steps up, and
    // `explain` names the nearest role in the chain that grants it.
    let last = chain - 1;
    assert!(allowed(&policy, last, 0));
    let nearest = (0..=last)
        .rev()
        .find(|j| j % PURPOSES == 0 && j % FieldKind::ALL.len() == 0)
        .map(|j| format!("r{j}"));
    assert_eq!(
        policy
            .explain_grant(&AccessRequest {
                accessor: &Accessor::new("t", [Role::new(&format!("r{last}"))]),
                purpose: "p0",
                kind: FieldKind::ALL[0],
                action: Action::Mask,
            })
            .grant
            .map(|g| g.granted_by),
        nearest
    );
    // Roots hold only their own grant: not their successor's, not the previous chain's.
    assert!(!allowed(&policy, 0, 1));
    assert!(!allowed(&policy, chain, chain - 1));
    // The same holds for every chain, checked against the grants written above.
    for i in (0..MAX_ROLES).step_by(97) {
        let root = i - i % chain;
        for j in (root..=i).step_by(7) {
            assert!(allowed(&policy, i, j), "r{i} inherits r{j}");
        }
    }
}

#[test]
fn one_step_deeper_than_the_limit_is_refused() {
    let chain = MAX_INHERITANCE_DEPTH + 2;
    assert_eq!(
        lint_errors(&chains(chain, chain)),
        [LintError::InheritanceTooDeep {
            role: format!("r{}", chain - 1),
            depth: MAX_INHERITANCE_DEPTH + 1,
            max: MAX_INHERITANCE_DEPTH,
        }]
    );
    // The 2,000-deep chain from the hardening issue: refused, not compiled.
    let errs = lint_errors(&chains(2_000, 2_000));
    assert_eq!(
        errs,
        [LintError::InheritanceTooDeep {
            role: "r1999".into(),
            depth: 1_999,
            max: MAX_INHERITANCE_DEPTH,
        }]
    );
    assert!(errs[0].to_string().contains("roles.r1999.inherits"));
    assert!(matches!(
        ManifestPolicy::from_toml(&chains(chain, chain)),
        Err(Error::Manifest(ManifestError::Lint(_)))
    ));
}

#[test]
fn depth_counts_the_longest_path_through_several_parents() {
    // A diamond: `top` reaches `base` in one step directly and in 65 through a chain.
    let mut t = chains(MAX_INHERITANCE_DEPTH, MAX_INHERITANCE_DEPTH);
    t.push_str(&format!(
        "[roles.base]\n[roles.r0]\ninherits = [\"base\"]\n[roles.top]\ninherits = [\"base\", \"r{}\"]\n",
        MAX_INHERITANCE_DEPTH - 1
    ));
    // `r0` is declared twice above: rebuild without its generated table.
    let t = t.replacen("[roles.r0]\n", "", 1);
    assert_eq!(
        lint_errors(&t),
        [LintError::InheritanceTooDeep {
            role: "top".into(),
            depth: MAX_INHERITANCE_DEPTH + 1,
            max: MAX_INHERITANCE_DEPTH,
        }]
    );
}

#[test]
fn one_role_more_than_the_limit_is_refused() {
    let text = chains(MAX_ROLES + 1, 1);
    assert!(text.len() <= MAX_MANIFEST_BYTES);
    assert_eq!(
        lint_errors(&text),
        [LintError::TooManyRoles {
            count: MAX_ROLES + 1,
            max: MAX_ROLES,
        }]
    );
}

#[test]
fn text_over_the_byte_limit_is_refused_before_parsing() {
    let base = header(1);
    let pad = |n: usize| format!("{base}#{}\n", "x".repeat(n - base.len() - 2));
    let at_limit = pad(MAX_MANIFEST_BYTES);
    assert_eq!(at_limit.len(), MAX_MANIFEST_BYTES);
    assert!(Manifest::from_toml(&at_limit).is_ok());
    let over = pad(MAX_MANIFEST_BYTES + 1);
    assert_eq!(
        Manifest::from_toml(&over),
        Err(ManifestError::TooLarge {
            len: MAX_MANIFEST_BYTES + 1,
            max: MAX_MANIFEST_BYTES,
        })
    );
    // Not even parsed: the same length of garbage gets the same answer.
    assert!(matches!(
        ManifestPolicy::from_toml(&"[".repeat(MAX_MANIFEST_BYTES + 1)),
        Err(Error::Manifest(ManifestError::TooLarge { .. }))
    ));
    assert!(
        !ManifestError::TooLarge { len: 1, max: 0 }
            .to_string()
            .is_empty()
    );
}

#[test]
fn inheritance_that_expands_too_far_is_refused() {
    // `g` grants 2,000 purposes; every role inheriting it holds all of them. 600 heirs need
    // 1,202,000 expansion steps (over the limit), 400 need 802,000 (under it).
    let purposes = 2_000;
    let build = |heirs: usize, parent_list: &str| {
        let mut t = header(purposes);
        for p in 0..purposes {
            t.push_str(&format!("[roles.g.grants.p{p}]\nreveal = [\"text\"]\n"));
        }
        for h in 0..heirs {
            t.push_str(&format!("[roles.h{h}]\ninherits = [{parent_list}]\n"));
        }
        assert!(t.len() <= MAX_MANIFEST_BYTES, "{} bytes", t.len());
        t
    };
    assert_eq!(
        lint_errors(&build(600, "\"g\"")),
        [LintError::TooManyExpandedGrants {
            max: MAX_EXPANDED_GRANTS
        }]
    );
    let policy = ManifestPolicy::from_toml(&build(400, "\"g\"")).unwrap_or_else(|e| panic!("{e}"));
    let acc = Accessor::new("t", [Role::new("h399")]);
    let req = AccessRequest {
        accessor: &acc,
        purpose: "p1999",
        kind: FieldKind::Text,
        action: Action::Mask,
    };
    assert_eq!(policy.decide(&req), Decision::Allow);
    // Naming the same parent many times does not multiply the work.
    let many = vec!["\"g\""; 200].join(", ");
    assert!(Manifest::from_toml(&build(400, &many)).is_ok());
}
