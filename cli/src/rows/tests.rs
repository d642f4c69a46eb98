//! The row engine: formats, failures kept, resumption, input identity.

use super::*;

fn layout() -> Layout {
    Layout {
        envelope: "envelope".into(),
        from_fields: vec![("row".into(), "id".into())],
        fixed: vec![("table".into(), "users".into())],
    }
}

/// Upper-cases envelopes; `fs1:bad` fails; stops the run when it meets `fs1:stop`.
fn upper(items: &[Item]) -> Result<Vec<Outcome>> {
    if items.iter().any(|i| i.envelope == "fs1:stop") {
        return Err(Failure::input("interrupted"));
    }
    Ok(items
        .iter()
        .map(|i| {
            assert_eq!(i.context[0], ("table".into(), "users".into()));
            if i.envelope == "fs1:bad" {
                Err("failed".to_owned())
            } else {
                Ok(i.envelope.to_uppercase())
            }
        })
        .collect())
}

#[test]
fn jsonl_rows_are_rewritten_in_place_and_failures_kept() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":1,\"envelope\":\"fs1:a\",\"note\":\"x\"}\n{\"id\":2,\"envelope\":\"fs1:bad\"}\nnot json\n{\"envelope\":\"fs1:c\",\"id\":\"3\"}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let paths = Paths::new(&dir.path().join("out.jsonl"));
    let s = run(
        &Job {
            input: &input,
            format: Format::Jsonl,
            layout: &layout(),
            paths: &paths,
            batch: 2,
            restart: false,
        },
        upper,
        |_, _| {},
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((s.rows, s.rewritten, s.failed), (4, 2, 2));
    let out = std::fs::read_to_string(&paths.out).unwrap_or_default();
    assert_eq!(
        out,
        "{\"id\":1,\"envelope\":\"FS1:A\",\"note\":\"x\"}\n{\"id\":2,\"envelope\":\"fs1:bad\"}\nnot json\n{\"envelope\":\"FS1:C\",\"id\":\"3\"}\n"
    );
    let errors = std::fs::read_to_string(&paths.errors).unwrap_or_default();
    assert_eq!(
        errors,
        "{\"row\":2,\"error\":\"failed\"}\n{\"row\":3,\"error\":\"not a JSON object\"}\n"
    );
    assert!(!paths.partial.exists() && !paths.checkpoint.exists());
}

#[test]
fn an_interrupted_csv_run_resumes_after_the_last_committed_batch() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        "id,envelope,comment\n1,fs1:a,\"one, two\"\n2,fs1:b,\n3,fs1:stop,\n4,fs1:d,x\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let paths = Paths::new(&dir.path().join("out.csv"));
    let r = run(
        &Job {
            input: &input,
            format: Format::Csv,
            layout: &layout(),
            paths: &paths,
            batch: 2,
            restart: false,
        },
        upper,
        |_, _| {},
    );
    assert!(r.is_err());
    assert!(!paths.out.exists(), "no half-written output");
    let c = load_checkpoint(&paths.checkpoint)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .unwrap_or_else(|| panic!("a checkpoint"));
    assert_eq!(c.rows, 2);
    // Garbage after the committed length (a crash mid-batch) is cut off on resume.
    let mut f = OpenOptions::new()
        .append(true)
        .open(&paths.partial)
        .unwrap_or_else(|e| panic!("{e}"));
    f.write_all(b"3,HALF").unwrap_or_else(|e| panic!("{e}"));
    let mut calls = Vec::new();
    let s = run(
        &Job {
            input: &input,
            format: Format::Csv,
            layout: &layout(),
            paths: &paths,
            batch: 2,
            restart: false,
        },
        |items: &[Item]| {
            calls.push(
                items
                    .iter()
                    .map(|i| i.context[1].1.clone())
                    .collect::<Vec<_>>(),
            );
            Ok(items
                .iter()
                .map(|i| Ok(i.envelope.replace("stop", "c").to_uppercase()))
                .collect())
        },
        |_, _| {},
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(calls, vec![vec!["3".to_owned(), "4".to_owned()]]);
    assert_eq!((s.resumed_at, s.rows, s.rewritten, s.failed), (2, 4, 4, 0));
    let out = std::fs::read_to_string(&paths.out).unwrap_or_default();
    assert_eq!(
        out,
        "id,envelope,comment\n1,FS1:A,\"one, two\"\n2,FS1:B,\n3,FS1:C,\n4,FS1:D,x\n"
    );
    assert!(!paths.errors.exists());
}

#[test]
fn never_overwrites_and_never_resumes_over_another_input() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"id\":1,\"envelope\":\"fs1:stop\"}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let paths = Paths::new(&dir.path().join("out.jsonl"));
    assert!(
        run(
            &Job {
                input: &input,
                format: Format::Jsonl,
                layout: &layout(),
                paths: &paths,
                batch: 1,
                restart: false
            },
            upper,
            |_, _| {}
        )
        .is_err()
    );
    std::fs::write(
        &input,
        "{\"id\":1,\"envelope\":\"fs1:a\"}\n{\"id\":2,\"envelope\":\"fs1:b\"}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The checkpoint is from the first run, over zero rows: still bound to that input.
    std::fs::write(
        &paths.checkpoint,
        serde_json::to_vec(&Checkpoint {
            input_len: 1,
            input_modified_ns: 1,
            format: "jsonl".into(),
            rows: 1,
            out_len: 0,
            errors_len: 0,
            rewritten: 0,
            failed: 0,
        })
        .unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let e = run(
        &Job {
            input: &input,
            format: Format::Jsonl,
            layout: &layout(),
            paths: &paths,
            batch: 1,
            restart: false,
        },
        upper,
        |_, _| {},
    );
    assert!(matches!(e, Err(Failure::Report { ref message, .. }) if message.contains("--restart")));
    let s = run(
        &Job {
            input: &input,
            format: Format::Jsonl,
            layout: &layout(),
            paths: &paths,
            batch: 1,
            restart: true,
        },
        upper,
        |_, _| {},
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(s.rewritten, 2);
    std::fs::write(&input, "{}\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        run(
            &Job {
                input: &input,
                format: Format::Jsonl,
                layout: &layout(),
                paths: &paths,
                batch: 1,
                restart: false
            },
            upper,
            |_, _| {}
        )
        .is_err()
    );
}
