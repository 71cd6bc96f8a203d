//! Cryptographically secure, unbiased draws.
//!
//! Every stream is a ChaCha20 generator (`rand_chacha`) seeded from the
//! operating system's random source (`getrandom`); bulk draws split the work
//! into chunks, each with its own freshly seeded stream, so both cores can
//! draw. A value below `n` is drawn with Lemire's multiply-and-reject method,
//! which is exactly uniform: no modulo bias.

use rand::rngs::SysRng;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use crate::error::{CoreError, Result};

/// A fresh CSPRNG stream seeded from the operating system.
pub fn os_seeded() -> Result<ChaCha20Rng> {
    ChaCha20Rng::try_from_rng(&mut SysRng).map_err(|e| CoreError::Random(e.to_string()))
}

/// One uniform draw from `0..n` (`n > 0`), without bias.
#[inline]
pub fn below<R: Rng + ?Sized>(rng: &mut R, n: u64) -> u64 {
    debug_assert!(n > 0);
    let mut m = (rng.next_u64() as u128) * (n as u128);
    if (m as u64) < n {
        // Reject the low band that would over-represent some results.
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = (rng.next_u64() as u128) * (n as u128);
        }
    }
    (m >> 64) as u64
}

const CHUNK: usize = 1 << 20;

/// Fill `out` with independent uniform draws from `0..n`, using every core:
/// each chunk draws from its own ChaCha20 stream seeded by `master`.
pub fn fill_below<R: Rng + ?Sized>(out: &mut [u64], n: u64, master: &mut R) -> Result<()> {
    let streams: Vec<ChaCha20Rng> = (0..out.len().div_ceil(CHUNK))
        .map(|_| ChaCha20Rng::from_rng(master))
        .collect();
    out.par_chunks_mut(CHUNK)
        .zip(streams)
        .for_each(|(chunk, mut rng)| {
            for v in chunk.iter_mut() {
                *v = below(&mut rng, n);
            }
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_hits_every_value() {
        let mut rng = os_seeded().unwrap();
        let mut seen = [0u32; 7];
        for _ in 0..70_000 {
            let v = below(&mut rng, 7);
            seen[v as usize] += 1;
        }
        // Each bucket expects 10,000 (sd ~ 93): 8 sd is far beyond chance.
        for c in seen {
            assert!((9_250..=10_750).contains(&c), "{seen:?}");
        }
    }

    #[test]
    fn fill_uses_fresh_streams() {
        let mut a = vec![0u64; 3 * CHUNK + 5];
        fill_below(&mut a, 10_000_000_000, &mut os_seeded().unwrap()).unwrap();
        assert!(a.iter().all(|v| *v < 10_000_000_000));
        // Two chunks drawing the same sequence would mean a reused seed.
        assert_ne!(a[..16], a[CHUNK..CHUNK + 16]);
    }
}
