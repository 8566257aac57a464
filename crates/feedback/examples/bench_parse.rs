//! Times feedback parsing over the sample corpus (release build recommended):
//! `cargo run --release -p emailengine-feedback --example bench_parse [-- RUNS]`.
//! Prints, per sample and over the whole corpus, the median over RUNS runs of ns per message for
//! the header-only candidate test, `parse_bounce` and `detect`.

use std::hint::black_box;
use std::time::Instant;

use emailengine_feedback::{PartFacts, Placement, candidates_from_headers, detect, parse_bounce};

const INBOX: Placement = Placement {
    inbox: true,
    junk: false,
};

/// Enough iterations that one run of one sample takes a few milliseconds.
const ITERATIONS: u32 = 400;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn header_section(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(raw.len(), |p| p + 2);
    &raw[..end]
}

/// Median ns per call of `f` on `input`.
fn time(runs: usize, input: &[u8], f: &dyn Fn(&[u8])) -> f64 {
    let samples = (0..runs)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ITERATIONS {
                f(black_box(input));
            }
            start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS)
        })
        .collect();
    median(samples)
}

fn main() -> std::io::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(15);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut corpus = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "eml") {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            corpus.push((name.unwrap_or_default(), std::fs::read(&path)?));
        }
    }
    corpus.sort();

    let headers = |raw: &[u8]| {
        black_box(candidates_from_headers(
            header_section(raw),
            PartFacts::default(),
            INBOX,
        ));
    };
    let bounce = |raw: &[u8]| {
        black_box(parse_bounce(raw));
    };
    let classify = |raw: &[u8]| {
        black_box(detect(raw, INBOX));
    };

    println!("median of {runs} runs, ns per message");
    println!(
        "{:<26} {:>7} {:>10} {:>13} {:>9}",
        "sample", "bytes", "headers", "parse_bounce", "detect"
    );
    let mut totals = [0.0f64; 3];
    for (name, raw) in &corpus {
        let row = [
            time(runs, raw, &headers),
            time(runs, raw, &bounce),
            time(runs, raw, &classify),
        ];
        for (total, value) in totals.iter_mut().zip(row) {
            *total += value;
        }
        println!(
            "{name:<26} {:>7} {:>10.0} {:>13.0} {:>9.0}",
            raw.len(),
            row[0],
            row[1],
            row[2]
        );
    }
    let count = corpus.len() as f64;
    println!(
        "{:<26} {:>7} {:>10.0} {:>13.0} {:>9.0}",
        "mean over corpus",
        "",
        totals[0] / count,
        totals[1] / count,
        totals[2] / count
    );
    Ok(())
}
