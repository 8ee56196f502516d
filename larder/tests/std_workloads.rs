//! Heavy std workloads (HashMap, BTreeMap, Vec growth, String building) with larder as the
//! global allocator, on 1 and 8 threads; every result is checked.

use std::collections::{BTreeMap, HashMap};

#[global_allocator]
static GLOBAL: larder::Larder = larder::Larder;

fn workload(seed: u64) -> u64 {
    let mut map: HashMap<u64, String> = HashMap::new();
    for i in 0..50_000u64 {
        map.insert(i ^ seed, format!("value-{i}-{seed}"));
    }
    for i in (0..50_000u64).step_by(3) {
        assert_eq!(map.remove(&(i ^ seed)), Some(format!("value-{i}-{seed}")));
    }
    let mut tree: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (k, v) in &map {
        tree.entry(v.clone()).or_default().push(*k);
    }
    assert_eq!(tree.len(), map.len());
    let mut grown: Vec<u64> = Vec::new();
    for i in 0..200_000u64 {
        grown.push(i * seed);
    }
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&i.to_string());
        text.push(',');
    }
    let parsed: u64 = text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().unwrap())
        .sum();
    assert_eq!(parsed, (0..20_000u64).sum());
    assert_eq!(grown[199_999], 199_999 * seed);
    tree.values().map(|v| v.len() as u64).sum::<u64>() + parsed
}

#[test]
fn one_thread() {
    let expected = workload(7);
    assert_eq!(workload(7), expected);
}

#[test]
fn eight_threads() {
    let handles: Vec<_> = (0..8u64)
        .map(|t| std::thread::spawn(move || (0..3).map(|_| workload(t + 1)).collect::<Vec<_>>()))
        .collect();
    for h in handles {
        let results = h.join().unwrap();
        assert!(results.windows(2).all(|w| w[0] == w[1]));
    }
}

#[test]
fn stats_track_live_bytes() {
    let before = larder::stats();
    let blocks: Vec<Box<[u8; 1000]>> = (0..1000).map(|_| Box::new([7u8; 1000])).collect();
    let during = larder::stats();
    assert!(during.alloc_count >= before.alloc_count + 1000);
    assert!(during.live_bytes >= 1_000_000, "{during:?}");
    assert!(during.requested_bytes >= before.requested_bytes + 1_000_000);
    assert!(during.peak_live_bytes >= during.live_bytes.min(1_000_000));
    // SAFETY: the box is live.
    assert!(unsafe { larder::usable_size(&*blocks[0] as *const [u8; 1000] as *const u8) } >= 1000);
    drop(blocks);
    let after = larder::stats();
    assert!(after.free_count >= during.free_count + 1000);
}
