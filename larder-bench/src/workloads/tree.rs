//! Workload 7, tree build and teardown (after the binary-trees benchmark): complete binary
//! trees of depth 20 (about two million 24-byte nodes) built node by node, walked to check
//! them, and dropped, many times over; each thread builds its own trees. Quick runs use
//! shallower trees.

use super::sizes::scaled;
use super::{Outcome, Params};

struct Node {
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
    value: u64,
}

const FULL_DEPTH: u32 = 20;

fn build(depth: u32, value: u64) -> Box<Node> {
    if depth == 0 {
        return Box::new(Node {
            left: None,
            right: None,
            value,
        });
    }
    Box::new(Node {
        left: Some(build(depth - 1, 2 * value)),
        right: Some(build(depth - 1, 2 * value + 1)),
        value,
    })
}

/// Returns (node count, sum of values) of the tree.
fn walk(node: &Node) -> (u64, u64) {
    let mut totals = (1, node.value);
    for child in [&node.left, &node.right].into_iter().flatten() {
        let (count, sum) = walk(child);
        totals = (totals.0 + count, totals.1.wrapping_add(sum));
    }
    totals
}

/// What `walk` must return for a tree built by `build(depth, 1)`: the nodes are numbered
/// 1..2^(depth+1) in heap order, so the sum is that of 1..=n.
fn expected(depth: u32) -> (u64, u64) {
    let nodes = (1u64 << (depth + 1)) - 1;
    (nodes, nodes * (nodes + 1) / 2)
}

/// The tree depth for a scale: 20 for full and near-full runs, shallower for quick ones.
fn depth_for(scale: f64) -> u32 {
    if scale >= 0.1 {
        FULL_DEPTH
    } else {
        let shrink = (0.1 / scale.max(1e-9)).log2().ceil() as u32;
        FULL_DEPTH.saturating_sub(shrink).max(8)
    }
}

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let depth = depth_for(params.scale);
    let trees = scaled(4, params.scale, 1);
    let results: Vec<u64> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..params.threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut good = 0;
                    for _ in 0..trees {
                        let tree = build(depth, 1);
                        good += u64::from(walk(&tree) == expected(depth));
                    }
                    good
                })
            })
            .collect();
        running
            .into_iter()
            .map(|h| h.join().expect("tree thread panicked"))
            .collect()
    });
    let built = params.threads as u64 * trees;
    let good: u64 = results.iter().sum();
    if good != built {
        return Err(format!(
            "{} of {built} trees did not walk back as built",
            built - good
        ));
    }
    let nodes = expected(depth).0;
    let mut outcome = Outcome {
        ops: built * nodes,
        checked: built * nodes,
        metrics: Vec::new(),
    };
    outcome.metrics.push(("depth".into(), f64::from(depth)));
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_tree_walks_back_to_its_formula() {
        for depth in 0..10 {
            assert_eq!(walk(&build(depth, 1)), expected(depth));
        }
    }

    #[test]
    fn quick_scales_shrink_the_tree() {
        assert_eq!(depth_for(1.0), 20);
        assert_eq!(depth_for(0.1), 20);
        assert!(depth_for(0.01) < 20);
        assert_eq!(depth_for(1e-9), 8);
    }
}
