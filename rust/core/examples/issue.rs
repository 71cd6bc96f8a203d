//! Time My Number issuance in the core alone:
//! `cargo run --release -p jukicore-core --example issue [n]` (default 20,000,000).
use jukicore_core::{mynumber::Issuer, registry::Registry};
use std::time::Instant;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(20_000_000);
    let codes = Registry::new().generate(n).unwrap();
    let mut issuer = Issuer::new(&[7u8; 32]).unwrap();
    let t = Instant::now();
    let nums = issuer.issue(&codes).unwrap();
    println!("issue {}: {:.2?}", nums.len(), t.elapsed());
}
