//! A set of disjoint byte ranges: which parts of a file have been written.

use serde::{Deserialize, Serialize};

/// Sorted, disjoint, non-adjacent half-open ranges `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        RangeSet(Vec::new())
    }

    /// Build from arbitrary ranges (validated: empty or inverted ones are dropped, the rest
    /// clipped to `limit` and merged).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>, limit: u64) -> Self {
        let mut set = RangeSet::new();
        for (start, end) in ranges {
            set.insert(start, end.min(limit));
        }
        set
    }

    /// Add `[start, end)`, merging with neighbours.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        // First range whose end reaches `start` (could merge), up to the first that starts past `end`.
        let first = self.0.partition_point(|&(_, e)| e < start);
        let mut last = first;
        while last < self.0.len() && self.0[last].0 <= end {
            start = start.min(self.0[last].0);
            end = end.max(self.0[last].1);
            last += 1;
        }
        self.0.splice(first..last, [(start, end)]);
    }

    /// Bytes covered.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }

    /// Length of the covered prefix starting at 0.
    pub fn prefix(&self) -> u64 {
        match self.0.first() {
            Some(&(0, end)) => end,
            _ => 0,
        }
    }

    /// The gaps within `[0, size)`, in order.
    pub fn gaps(&self, size: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut cursor = 0;
        for &(s, e) in &self.0 {
            if s >= size {
                break;
            }
            if s > cursor {
                gaps.push((cursor, s));
            }
            cursor = cursor.max(e);
        }
        if cursor < size {
            gaps.push((cursor, size));
        }
        gaps
    }

    /// The ranges.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn merges_and_reports() {
        let mut set = RangeSet::new();
        set.insert(10, 20);
        set.insert(30, 40);
        set.insert(20, 30);
        assert_eq!(set.ranges(), &[(10, 40)]);
        assert_eq!(set.prefix(), 0);
        set.insert(0, 5);
        assert_eq!(set.gaps(50), vec![(5, 10), (40, 50)]);
        set.insert(3, 12);
        assert_eq!(set.prefix(), 40);
        assert_eq!(set.total(), 40);
    }

    proptest! {
        #[test]
        fn matches_a_bitmap(ops in proptest::collection::vec((0u64..200, 0u64..200), 0..40)) {
            let mut set = RangeSet::new();
            let mut bits = [false; 200];
            for (a, b) in ops {
                set.insert(a, b);
                for bit in bits.iter_mut().take(b as usize).skip(a as usize) { *bit = true; }
            }
            prop_assert_eq!(set.total(), bits.iter().filter(|b| **b).count() as u64);
            prop_assert_eq!(set.prefix(), bits.iter().take_while(|b| **b).count() as u64);
            let gap_total: u64 = set.gaps(200).iter().map(|(s, e)| e - s).sum();
            prop_assert_eq!(gap_total + set.total(), 200);
            for w in set.ranges().windows(2) { prop_assert!(w[0].1 < w[1].0); }
        }
    }
}
