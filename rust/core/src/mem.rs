//! Fresh, zeroed buffers for large outputs.
//!
//! A large output is written once, so most of its cost on Linux is faulting
//! in fresh pages. Asking for transparent huge pages before the first touch
//! (`madvise(MADV_HUGEPAGE)`; the kernel here is in `madvise` mode) faults it
//! in 2 MiB pages instead of 4 KiB ones.

/// A vector of `len` default (all-zero) values; large ones get huge-page advice.
pub fn fresh_vec<T: Clone + Default>(len: usize) -> Vec<T> {
    // `vec![x; n]` with an all-zero `x` gets untouched pages from calloc/mmap.
    let out = vec![T::default(); len];
    advise_huge(out.as_ptr() as usize, len * std::mem::size_of::<T>());
    out
}

fn advise_huge(start: usize, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        if len >= 4 * HUGE {
            let aligned = start.next_multiple_of(HUGE);
            let end = (start + len) & !(HUGE - 1);
            if end > aligned {
                // SAFETY: advice only, on whole pages inside one allocation of
                // ours; it changes no contents. Failure is harmless and ignored.
                unsafe {
                    libc::madvise(
                        aligned as *mut libc::c_void,
                        end - aligned,
                        libc::MADV_HUGEPAGE,
                    );
                }
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

#[cfg(test)]
mod tests {
    #[test]
    fn fresh_vectors_are_zeroed() {
        let v: Vec<u64> = super::fresh_vec(3 << 20);
        assert!(v.iter().all(|x| *x == 0));
        let b: Vec<bool> = super::fresh_vec(10);
        assert_eq!(b, vec![false; 10]);
    }
}
