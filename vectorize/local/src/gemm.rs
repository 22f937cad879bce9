//! Matrix products: `out = x · Wᵀ + b` with the dense layers' weights packed once, at
//! load time, into the layout the kernel reads (column panels of [`NR`], k-major), so
//! that no call repacks them; the attention products pack their right-hand side (a
//! head's keys or values) into a reused buffer. A kernel keeps a block of the output in
//! registers over a slice of k: 12 × 16 with AVX-512F (12 accumulators of 16 lanes),
//! 6 × 16 with AVX2 + FMA (12 accumulators of 8 lanes); x is read in place, a block of
//! rows at a time that stays in L2, while each weight panel slice stays in L1.
//!
//! The kernel is chosen at run time ([`best_kernel`]): AVX-512F, else AVX2 + FMA, else
//! a portable kernel over the same layout that the compiler vectorizes.

/// Output columns per panel (two AVX2 vectors).
pub(crate) const NR: usize = 16;
/// Output rows per call of the AVX2 and portable kernels.
const MR: usize = 6;
/// k per pass: a panel slice (KC × NR × 4 bytes = 24 KiB) fits L1.
const KC: usize = 384;
/// Rows per block: MC rows × KC of x (144 KiB) stay in L2 while every panel passes (a
/// multiple of every kernel's rows).
const MC: usize = 96;

/// A PyTorch `Linear` weight (`[n × k]`, row-major) packed as Wᵀ in panels of [`NR`]
/// output columns: panel p holds, for each kk in 0..k, W[p·NR + j][kk] for j in 0..NR
/// (zero past n).
pub(crate) struct Packed {
    k: usize,
    n: usize,
    /// `panels × k` lines: line `p·k + kk` holds W[p·NR + j][kk] for j in 0..NR.
    data: Vec<Line>,
}

/// One k-step of a panel: a cache line, aligned so that no load straddles two.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; NR]);

const ZERO: Line = Line([0.0; NR]);

impl Packed {
    /// Packs weights stacked row-wise: several `[n_i × k]` matrices as one
    /// `[Σn_i × k]` (the query, key and value projections as one product).
    pub(crate) fn new(parts: &[&[f32]], k: usize) -> Packed {
        let mut p = Packed::empty();
        p.set_rows(k, parts.iter().flat_map(|w| w.chunks_exact(k)));
        p
    }

    pub(crate) fn empty() -> Packed {
        Packed {
            k: 0,
            n: 0,
            data: Vec::new(),
        }
    }

    /// Packs W given as its n rows of k (`out = x · Wᵀ`), reusing the buffer.
    pub(crate) fn set_rows<'a>(&mut self, k: usize, rows: impl Iterator<Item = &'a [f32]>) {
        self.k = k;
        self.n = 0;
        self.data.clear();
        for (col, row) in rows.enumerate() {
            let (p, j) = (col / NR, col % NR);
            if j == 0 {
                self.data.resize((p + 1) * k, ZERO);
            }
            let panel = &mut self.data[p * k..(p + 1) * k];
            for (line, &w) in panel.iter_mut().zip(&row[..k]) {
                line.0[j] = w;
            }
            self.n = col + 1;
        }
    }

    /// Packs B given as its k rows of n (`out = x · B`), reusing the buffer.
    pub(crate) fn set_cols<'a>(
        &mut self,
        n: usize,
        rows: impl ExactSizeIterator<Item = &'a [f32]>,
    ) {
        let k = rows.len();
        let panels = n.div_ceil(NR);
        self.k = k;
        self.n = n;
        self.data.clear();
        self.data.resize(panels * k, ZERO);
        for (kk, row) in rows.enumerate() {
            for p in 0..panels {
                let cols = NR.min(n - p * NR);
                self.data[p * k + kk].0[..cols].copy_from_slice(&row[p * NR..p * NR + cols]);
            }
        }
    }

    #[cfg(test)]
    fn n(&self) -> usize {
        self.n
    }
}

/// `out[m × n] = x[m × k] · Wᵀ + bias`, all contiguous.
pub(crate) fn linear(x: &[f32], m: usize, w: &Packed, bias: &[f32], out: &mut [f32]) {
    assert_eq!(bias.len(), w.n);
    matmul(x, w.k, m, w, Some(bias), out, w.n);
}

/// `out = x · W (+ bias)` over row-strided views: x has m rows of k at stride `lda`,
/// out m rows of n at stride `ldc`; without a bias the product starts from zero.
pub(crate) fn matmul(
    x: &[f32],
    lda: usize,
    m: usize,
    w: &Packed,
    bias: Option<&[f32]>,
    out: &mut [f32],
    ldc: usize,
) {
    let (k, n) = (w.k, w.n);
    if m == 0 || n == 0 {
        return;
    }
    assert!(lda >= k && ldc >= n && bias.is_none_or(|b| b.len() == n));
    assert!(x.len() >= (m - 1) * lda + k && out.len() >= (m - 1) * ldc + n);
    if k == 0 {
        for row in 0..m {
            let o = &mut out[row * ldc..row * ldc + n];
            match bias {
                Some(b) => o.copy_from_slice(b),
                None => o.fill(0.0),
            }
        }
        return;
    }
    let ab = Strided { x, lda, out, ldc };
    drive(ab, m, w, bias, best_kernel());
}

/// A block kernel and the most rows it takes per call.
type Kernel = (fn(&Tile, &mut [f32], usize), usize);

/// The fastest kernel this CPU runs: AVX-512 (16 lanes, 12 rows), AVX2 + FMA (8 lanes,
/// 6 rows), or the portable one.
fn best_kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return (avx512::kernel, avx512::MR);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return (avx2::kernel, MR);
        }
    }
    (portable_kernel, MR)
}

struct Strided<'a, 'b> {
    x: &'a [f32],
    lda: usize,
    out: &'b mut [f32],
    ldc: usize,
}

/// One kernel call: rows `r..r+mr` (mr ≤ the kernel's rows) of x over `kb..kb+kc`,
/// one panel.
struct Tile<'a> {
    x: &'a [f32],
    lda: usize,
    mr: usize,
    b: &'a [Line],
    kc: usize,
    cols: usize,
    /// `cols` values, or none (zero).
    bias: Option<&'a [f32]>,
    /// The first k pass starts from the bias, later ones add to the output.
    first: bool,
}

impl Tile<'_> {
    /// The extents an intrinsics kernel relies on (`drive` builds them so): x holds mr
    /// rows of kc (stride lda), b holds kc × NR, c holds mr rows of cols (stride ldc).
    #[cfg(target_arch = "x86_64")]
    fn check(&self, c: &[f32], ldc: usize, mr_max: usize) {
        assert!(self.mr >= 1 && self.mr <= mr_max && self.b.len() == self.kc);
        assert!(self.x.len() > (self.mr - 1) * self.lda + self.kc - 1);
        assert!(c.len() >= (self.mr - 1) * ldc + self.cols);
        assert!(self.bias.is_none_or(|b| b.len() == self.cols));
    }

    /// What column j of a row starts from: the bias (or zero) on the first k pass,
    /// the partial sum `current` after it.
    fn start(&self, j: usize, current: f32) -> f32 {
        match (self.first, self.bias) {
            (true, Some(b)) => b[j],
            (true, None) => 0.0,
            (false, _) => current,
        }
    }
}

fn drive(ab: Strided, m: usize, w: &Packed, bias: Option<&[f32]>, (kernel, mr_max): Kernel) {
    let Strided { x, lda, out, ldc } = ab;
    let (k, n) = (w.k, w.n);
    let panels = n.div_ceil(NR);
    for kb in (0..k).step_by(KC) {
        let kc = KC.min(k - kb);
        for mb in (0..m).step_by(MC) {
            let mc = MC.min(m - mb);
            for p in 0..panels {
                let col = p * NR;
                let cols = NR.min(n - col);
                let b = &w.data[p * k + kb..p * k + kb + kc];
                let mut r = mb;
                while r < mb + mc {
                    let mr = mr_max.min(mb + mc - r);
                    let tile = Tile {
                        x: &x[r * lda + kb..(r + mr - 1) * lda + kb + kc],
                        lda,
                        mr,
                        b,
                        kc,
                        cols,
                        bias: bias.map(|b| &b[col..col + cols]),
                        first: kb == 0,
                    };
                    let c_end = (r + mr - 1) * ldc + col + cols;
                    kernel(&tile, &mut out[r * ldc + col..c_end], ldc);
                    r += mr;
                }
            }
        }
    }
}

/// The same block computation in plain Rust (vectorized by the compiler).
fn portable_kernel(t: &Tile, c: &mut [f32], ldc: usize) {
    let mut acc = [[0f32; NR]; MR];
    for (kk, line) in t.b.iter().enumerate() {
        for (i, row) in acc.iter_mut().enumerate().take(t.mr) {
            let a = t.x[i * t.lda + kk];
            for (s, &bv) in row.iter_mut().zip(&line.0) {
                *s += a * bv;
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(t.mr) {
        let out = &mut c[i * ldc..i * ldc + t.cols];
        for (j, o) in out.iter_mut().enumerate() {
            *o = t.start(j, *o) + row[j];
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use super::{MR, NR, Tile};
    use std::arch::x86_64::*;

    pub(super) fn kernel(t: &Tile, c: &mut [f32], ldc: usize) {
        t.check(c, ldc, MR);
        // SAFETY: `best_kernel` picks this only when AVX2 and FMA are present; every pointer
        // below stays within the asserted extents (rows past mr repeat the last row and
        // are never stored).
        unsafe { kernel_avx2(t, c, ldc) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel_avx2(t: &Tile, c: &mut [f32], ldc: usize) {
        let x = t.x.as_ptr();
        let last = t.mr - 1;
        // rows past mr repeat the last one (computed, never stored)
        let (a0, a1, a2, a3, a4, a5) = unsafe {
            (
                x,
                x.add(1.min(last) * t.lda),
                x.add(2.min(last) * t.lda),
                x.add(3.min(last) * t.lda),
                x.add(4.min(last) * t.lda),
                x.add(5.min(last) * t.lda),
            )
        };
        let mut pb = t.b.as_ptr().cast::<f32>();
        let z = _mm256_setzero_ps();
        let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
        let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
        for kk in 0..t.kc {
            unsafe {
                let b0 = _mm256_load_ps(pb);
                let b1 = _mm256_load_ps(pb.add(8));
                pb = pb.add(NR);
                let a = _mm256_broadcast_ss(&*a0.add(kk));
                c00 = _mm256_fmadd_ps(a, b0, c00);
                c01 = _mm256_fmadd_ps(a, b1, c01);
                let a = _mm256_broadcast_ss(&*a1.add(kk));
                c10 = _mm256_fmadd_ps(a, b0, c10);
                c11 = _mm256_fmadd_ps(a, b1, c11);
                let a = _mm256_broadcast_ss(&*a2.add(kk));
                c20 = _mm256_fmadd_ps(a, b0, c20);
                c21 = _mm256_fmadd_ps(a, b1, c21);
                let a = _mm256_broadcast_ss(&*a3.add(kk));
                c30 = _mm256_fmadd_ps(a, b0, c30);
                c31 = _mm256_fmadd_ps(a, b1, c31);
                let a = _mm256_broadcast_ss(&*a4.add(kk));
                c40 = _mm256_fmadd_ps(a, b0, c40);
                c41 = _mm256_fmadd_ps(a, b1, c41);
                let a = _mm256_broadcast_ss(&*a5.add(kk));
                c50 = _mm256_fmadd_ps(a, b0, c50);
                c51 = _mm256_fmadd_ps(a, b1, c51);
            }
        }
        let acc = [c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51];
        let cp = c.as_mut_ptr();
        for i in 0..t.mr {
            unsafe {
                let out = cp.add(i * ldc);
                if t.cols == NR {
                    let (base0, base1) = match (t.first, t.bias) {
                        (true, Some(b)) => (
                            _mm256_loadu_ps(b.as_ptr()),
                            _mm256_loadu_ps(b.as_ptr().add(8)),
                        ),
                        (true, None) => (_mm256_setzero_ps(), _mm256_setzero_ps()),
                        (false, _) => (_mm256_loadu_ps(out), _mm256_loadu_ps(out.add(8))),
                    };
                    _mm256_storeu_ps(out, _mm256_add_ps(base0, acc[2 * i]));
                    _mm256_storeu_ps(out.add(8), _mm256_add_ps(base1, acc[2 * i + 1]));
                } else {
                    let mut tmp = [0f32; NR];
                    _mm256_storeu_ps(tmp.as_mut_ptr(), acc[2 * i]);
                    _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc[2 * i + 1]);
                    for (j, v) in tmp.iter().enumerate().take(t.cols) {
                        let o = out.add(j);
                        *o = t.start(j, *o) + v;
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use super::{NR, Tile};
    use std::arch::x86_64::*;

    /// Rows per call: 12 accumulators of one 16-lane vector each (a panel is one
    /// vector wide), the B line loaded once per k-step, each x value broadcast.
    pub(super) const MR: usize = 12;

    pub(super) fn kernel(t: &Tile, c: &mut [f32], ldc: usize) {
        t.check(c, ldc, MR);
        // SAFETY: `best_kernel` picks this only when AVX-512F is present; every pointer
        // below stays within the asserted extents (rows past mr repeat the last row and
        // are never stored).
        unsafe { kernel_avx512(t, c, ldc) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn kernel_avx512(t: &Tile, c: &mut [f32], ldc: usize) {
        let x = t.x.as_ptr();
        let last = t.mr - 1;
        // rows past mr repeat the last one (computed, never stored)
        let rows: [*const f32; MR] = std::array::from_fn(|i| unsafe { x.add(i.min(last) * t.lda) });
        let mut acc = [_mm512_setzero_ps(); MR];
        let mut pb = t.b.as_ptr().cast::<f32>();
        for kk in 0..t.kc {
            unsafe {
                let b = _mm512_load_ps(pb);
                pb = pb.add(NR);
                for i in 0..MR {
                    acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(*rows[i].add(kk)), b, acc[i]);
                }
            }
        }
        let cp = c.as_mut_ptr();
        for (i, &sum) in acc.iter().enumerate().take(t.mr) {
            unsafe {
                let out = cp.add(i * ldc);
                if t.cols == NR {
                    let base = match (t.first, t.bias) {
                        (true, Some(b)) => _mm512_loadu_ps(b.as_ptr()),
                        (true, None) => _mm512_setzero_ps(),
                        (false, _) => _mm512_loadu_ps(out),
                    };
                    _mm512_storeu_ps(out, _mm512_add_ps(base, sum));
                } else {
                    let mut tmp = [0f32; NR];
                    _mm512_storeu_ps(tmp.as_mut_ptr(), sum);
                    for (j, v) in tmp.iter().enumerate().take(t.cols) {
                        let o = out.add(j);
                        *o = t.start(j, *o) + v;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naive product, in f64.
    fn reference(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, b: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for r in 0..m {
            for c in 0..n {
                let mut s = b[c] as f64;
                for kk in 0..k {
                    s += x[r * k + kk] as f64 * w[c * k + kk] as f64;
                }
                out[r * n + c] = s as f32;
            }
        }
        out
    }

    /// Every kernel this CPU can run, each checked on its own.
    fn kernels() -> Vec<(&'static str, Kernel)> {
        let mut v: Vec<(&'static str, Kernel)> = vec![("portable", (portable_kernel, MR))];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(("avx2", (avx2::kernel, MR)));
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(("avx512", (avx512::kernel, avx512::MR)));
            }
        }
        v
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn every_shape_matches_the_naive_product() {
        // edges: rows not a multiple of 6, 12 or the row block, columns not a multiple
        // of 16, k longer than one pass, two stacked weights
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 7, 3),
            (6, 16, 16),
            (97, 384, 40),
            (13, 1000, 33),
            (200, 385, 48),
        ] {
            let x = data(m * k, 1);
            let w = data(n * k, 2);
            let b = data(n, 3);
            let want = reference(&x, m, k, &w, n, &b);
            let split = n / 2;
            let packed = Packed::new(&[&w[..split * k], &w[split * k..]], k);
            assert_eq!(packed.n(), n);
            let mut got = vec![f32::NAN; m * n];
            linear(&x, m, &packed, &b, &mut got);
            let tol = 1e-5 * (k as f32).sqrt() * 4.0;
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= tol, "{m}x{k}x{n} [{i}]: {g} vs {w}");
            }
            for (name, kernel) in kernels() {
                let mut out = vec![f32::NAN; m * n];
                let ab = Strided {
                    x: &x,
                    lda: k,
                    out: &mut out,
                    ldc: n,
                };
                drive(ab, m, &packed, Some(&b), kernel);
                for (i, (g, w)) in out.iter().zip(&want).enumerate() {
                    assert!((g - w).abs() <= tol, "{m}x{k}x{n} [{i}] {name}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn strided_views_and_repacked_operands_match_the_naive_product() {
        // the attention shapes: x = a head's queries inside wider rows, W = its keys
        // (set_rows), then probabilities times its values (set_cols), written into a
        // column band of a wider output
        let (t, width, dh, off) = (37, 100, 20, 30);
        let rows = data(t * width, 4);
        let head = |r: usize, base: usize| &rows[r * width + base..r * width + base + dh];
        let mut keys = Packed::empty();
        keys.set_rows(dh, (0..t).map(|r| head(r, off + dh)));
        let mut scores = vec![f32::NAN; t * t];
        matmul(&rows[off..], width, t, &keys, None, &mut scores, t);
        let mut vals = Packed::empty();
        vals.set_cols(dh, (0..t).map(|r| head(r, off + 2 * dh)));
        let mut out = vec![7.0f32; t * width];
        matmul(&scores, t, t, &vals, None, &mut out[off..], width);
        for i in 0..t {
            for j in 0..t {
                let want: f32 = (0..dh)
                    .map(|d| head(i, off)[d] * head(j, off + dh)[d])
                    .sum();
                assert!((scores[i * t + j] - want).abs() < 1e-4);
            }
            for d in 0..dh {
                let want: f32 = (0..t)
                    .map(|j| scores[i * t + j] * head(j, off + 2 * dh)[d])
                    .sum();
                assert!((out[i * width + off + d] - want).abs() < 1e-3);
            }
            assert_eq!(out[i * width + off - 1], 7.0, "outside the band untouched");
            assert_eq!(out[i * width + off + dh], 7.0);
        }
    }
}
