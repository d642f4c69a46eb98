//! Role inheritance as a graph: cycles, a parents-first order, depths, and the inherited grants
//! of every role computed once per role.
//!
//! Manifests come from files and may be hostile (fuzzed), so everything here is iterative (no
//! recursion depth proportional to the input) and linear in roles plus inheritance edges, apart
//! from the inherited sets themselves, whose total size the caller caps.

use std::collections::{BTreeMap, BTreeSet};

use crate::policy::manifest::RoleSpec;

/// Per role, its entries after expansion, sorted by key.
pub(crate) type Expanded<T> = Vec<Box<[(u32, T)]>>;

/// The expansion would take more work than its cap allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverCap;

/// Role inheritance with roles as indices into the sorted role names.
pub(crate) struct Hierarchy<'a> {
    /// Role names, sorted (the order of the manifest's map).
    names: Vec<&'a str>,
    /// Per role, the indices of its defined parents, in declared order (undefined parents are
    /// left out: the lint reports them).
    parents: Vec<Vec<u32>>,
}

impl<'a> Hierarchy<'a> {
    pub(crate) fn new(roles: &'a BTreeMap<String, RoleSpec>) -> Self {
        let names: Vec<&str> = roles.keys().map(String::as_str).collect();
        let index = |n: &str| {
            names
                .binary_search(&n)
                .ok()
                .and_then(|i| u32::try_from(i).ok())
        };
        // A parent listed twice is kept once, so that it cannot multiply the expansion's work.
        let parents = roles
            .values()
            .map(|spec| {
                let mut ps: Vec<u32> = Vec::with_capacity(spec.inherits.len());
                let mut seen = BTreeSet::new();
                for p in spec.inherits.iter().filter_map(|p| index(p)) {
                    if seen.insert(p) {
                        ps.push(p);
                    }
                }
                ps
            })
            .collect();
        Self { names, parents }
    }

    /// Number of roles.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The name of role `i`.
    pub(crate) fn name(&self, i: usize) -> &'a str {
        self.names.get(i).copied().unwrap_or("")
    }

    /// The parents of role `i`.
    pub(crate) fn parents(&self, i: usize) -> &[u32] {
        self.parents.get(i).map_or(&[], Vec::as_slice)
    }

    /// Every role, each after all of its parents; `None` if inheritance has a cycle.
    pub(crate) fn order(&self) -> Option<Vec<u32>> {
        // Kahn's algorithm on the parent -> child edges.
        let n = self.len();
        let mut pending: Vec<usize> = self.parents.iter().map(Vec::len).collect();
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (child, ps) in self.parents.iter().enumerate() {
            let child = u32::try_from(child).ok()?;
            for &p in ps {
                children.get_mut(p as usize)?.push(child);
            }
        }
        let mut order: Vec<u32> = (0..n)
            .filter(|&i| pending[i] == 0)
            .filter_map(|i| u32::try_from(i).ok())
            .collect();
        let mut next = 0;
        while let Some(&r) = order.get(next) {
            next += 1;
            for &c in &children[r as usize] {
                let left = &mut pending[c as usize];
                *left -= 1;
                if *left == 0 {
                    order.push(c);
                }
            }
        }
        (order.len() == n).then_some(order)
    }

    /// Per role, the number of inheritance edges on the longest path to a role that inherits
    /// nothing. `order` is [`Hierarchy::order`].
    pub(crate) fn depths(&self, order: &[u32]) -> Vec<usize> {
        let mut depth = vec![0usize; self.len()];
        for &r in order {
            let d = self
                .parents(r as usize)
                .iter()
                .map(|&p| depth[p as usize] + 1)
                .max()
                .unwrap_or(0);
            depth[r as usize] = d;
        }
        depth
    }

    /// Every role's own entries merged with those of every role it inherits from, transitively:
    /// one list per role, sorted by key, built from its parents' finished lists (`order` is
    /// [`Hierarchy::order`]), so each role is expanded once. Keys are below `keys`; entries with
    /// the same key are combined with `merge`.
    ///
    /// The work is counted as every role's own entries plus, per inheritance edge, the entries
    /// of the parent's finished list; it bounds both time and the size of the result.
    ///
    /// # Errors
    /// [`OverCap`], before doing it, as soon as that work would exceed `cap`.
    pub(crate) fn expand<T: Copy>(
        &self,
        order: &[u32],
        own: &[Vec<(u32, T)>],
        keys: usize,
        merge: impl Fn(&mut T, T),
        cap: usize,
    ) -> Result<Expanded<T>, OverCap> {
        let mut done: Expanded<T> = vec![Box::default(); self.len()];
        // One slot per key: a role's entries are merged in place, without sorting its parents'
        // lists together.
        let mut slots: Vec<Option<T>> = vec![None; keys];
        let mut touched: Vec<u32> = Vec::new();
        let mut work = 0usize;
        for &r in order {
            let r = r as usize;
            let mine = own.get(r).map_or(&[][..], Vec::as_slice);
            let parents = self.parents(r);
            let cost = parents
                .iter()
                .fold(mine.len(), |n, &p| n.saturating_add(done[p as usize].len()));
            work = work.saturating_add(cost);
            if work > cap {
                return Err(OverCap);
            }
            let inherited = parents.iter().flat_map(|&p| done[p as usize].iter());
            for &(k, v) in mine.iter().chain(inherited) {
                let Some(slot) = slots.get_mut(k as usize) else {
                    continue;
                };
                match slot {
                    Some(have) => merge(have, v),
                    None => {
                        *slot = Some(v);
                        touched.push(k);
                    }
                }
            }
            touched.sort_unstable();
            done[r] = touched
                .drain(..)
                .filter_map(|k| Some((k, slots.get_mut(k as usize)?.take()?)))
                .collect();
        }
        Ok(done)
    }
}

/// Every inheritance cycle, each reported once (starting at its smallest role name).
pub(crate) fn cycles(h: &Hierarchy<'_>) -> Vec<Vec<String>> {
    // Iterative three-colour depth-first search.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; h.len()];
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for start in 0..h.len() {
        if mark[start] != Mark::New {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::OnPath;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&p) = h.parents(node).get(*next) {
                *next += 1;
                let pi = p as usize;
                match mark[pi] {
                    Mark::New => {
                        mark[pi] = Mark::OnPath;
                        path.push((pi, 0));
                    }
                    Mark::OnPath => {
                        let from = path.iter().position(|&(n, _)| n == pi).unwrap_or(0);
                        let mut cyc: Vec<String> = path[from..]
                            .iter()
                            .map(|&(n, _)| h.name(n).to_owned())
                            .collect();
                        let min = cyc
                            .iter()
                            .enumerate()
                            .min_by(|a, b| a.1.cmp(b.1))
                            .map_or(0, |(i, _)| i);
                        cyc.rotate_left(min);
                        found.insert(cyc);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                path.pop();
            }
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(edges: &[(&str, &[&str])]) -> BTreeMap<String, RoleSpec> {
        edges
            .iter()
            .map(|(r, ps)| {
                (
                    (*r).to_owned(),
                    RoleSpec {
                        inherits: ps.iter().map(|p| (*p).to_owned()).collect(),
                        grants: BTreeMap::new(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn order_puts_parents_first_and_detects_cycles() {
        let m = roles(&[
            ("a", &["b", "c"]),
            ("b", &["c"]),
            ("c", &[]),
            ("d", &["ghost"]),
        ]);
        let h = Hierarchy::new(&m);
        let order = h.order().unwrap_or_else(|| panic!("acyclic"));
        let pos = |n: &str| order.iter().position(|&i| h.name(i as usize) == n);
        assert!(pos("c") < pos("b") && pos("b") < pos("a"));
        assert_eq!(h.depths(&order), [2, 1, 0, 0]);
        let cyc = roles(&[("a", &["b"]), ("b", &["a"]), ("c", &[])]);
        let h = Hierarchy::new(&cyc);
        assert!(h.order().is_none());
        assert_eq!(cycles(&h), [vec!["a".to_owned(), "b".to_owned()]]);
    }

    #[test]
    fn expand_merges_inherited_entries_once() {
        let m = roles(&[("a", &["b", "c"]), ("b", &["c"]), ("c", &[])]);
        let h = Hierarchy::new(&m);
        let order = h.order().unwrap_or_else(|| panic!("acyclic"));
        let own = vec![vec![(1, 1u8)], vec![(0, 2)], vec![(0, 4), (2, 8)]];
        let or = |a: &mut u8, b: u8| *a |= b;
        let all = h
            .expand(&order, &own, 3, or, 100)
            .unwrap_or_else(|OverCap| panic!("under the cap"));
        assert_eq!(&*all[0], [(0, 6), (1, 1), (2, 8)]);
        assert_eq!(&*all[1], [(0, 6), (2, 8)]);
        assert_eq!(&*all[2], [(0, 4), (2, 8)]);
        // Work: c 2; b 1 + 2 (from c); a 1 + 2 (from b) + 2 (from c) = 10.
        assert!(h.expand(&order, &own, 3, or, 10).is_ok());
        assert!(h.expand(&order, &own, 3, or, 9).is_err());
    }
}
