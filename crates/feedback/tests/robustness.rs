//! Whatever arrives in a mailbox, detection returns an answer and never panics: truncated and
//! shuffled corpus samples, and arbitrary bytes.

use emailengine_feedback::{
    PartFacts, Placement, candidates_from_headers, decode_bounce_records, detect,
};
use proptest::prelude::*;

const EVERYWHERE: Placement = Placement {
    inbox: true,
    junk: true,
};

fn corpus() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut samples: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    samples.sort();
    samples
}

#[test]
fn every_truncation_of_every_sample() {
    for sample in corpus() {
        for end in (0..sample.len()).step_by(3) {
            let raw = &sample[..end];
            detect(raw, EVERYWHERE);
            candidates_from_headers(raw, PartFacts::default(), EVERYWHERE);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
        detect(&raw, EVERYWHERE);
        candidates_from_headers(&raw, PartFacts::default(), EVERYWHERE);
        let _ = decode_bounce_records(&raw);
    }

    #[test]
    fn shuffled_sample_lines(pick in 0usize..19, order in proptest::collection::vec(any::<u16>(), 1..120)) {
        let samples = corpus();
        let sample = &samples[pick % samples.len()];
        let lines: Vec<&[u8]> = sample.split_inclusive(|b| *b == b'\n').collect();
        let raw: Vec<u8> = order
            .iter()
            .flat_map(|i| lines[usize::from(*i) % lines.len()].iter().copied())
            .collect();
        detect(&raw, EVERYWHERE);
    }
}
