//! Randomness of training: the epoch plan (image order and flips), a pure function of the
//! seed and the epoch, and seeded initialisation.

/// SplitMix64: a tiny, fast, well-mixed generator whose whole state is one `u64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (multiply-shift; the bias is below 2^-32 for any realistic `n`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// The images of epoch `epoch` in order, each with its flip: a Fisher-Yates permutation of
/// `0..n` and (with `hflip`) one fair coin per position, from a generator seeded by
/// `(seed, epoch)` only.
pub fn epoch_plan(seed: u64, epoch: u64, n: usize, hflip: bool) -> Vec<(usize, bool)> {
    let mut rng = SplitMix64::new(seed ^ (epoch.wrapping_add(1)).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        perm.swap(i, j);
    }
    perm.into_iter().map(|i| (i, hflip && rng.next_u64() >> 63 == 1)).collect()
}

/// Serialises the users of libtorch's global generator within this process.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` right after `tch::manual_seed(seed)`, holding a process-wide lock so that no other
/// caller of this function draws from libtorch's global generator meanwhile (tests run in
/// parallel threads; the heads' initialisation must not interleave with another's).
pub fn with_seeded_torch<T>(seed: i64, f: impl FnOnce() -> T) -> T {
    let _guard = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    f()
}
