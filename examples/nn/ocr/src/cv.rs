//! The OpenCV 4 routines RapidOCR's pipeline calls, reimplemented so that
//! they give the same numbers: `resize` (INTER_LINEAR on 8-bit images, with
//! OpenCV's 11-bit fixed-point coefficients), `findContours` (RETR_LIST,
//! CHAIN_APPROX_SIMPLE), `convexHull`, `minAreaRect`, `boxPoints`,
//! `fillPoly`, `getPerspectiveTransform` and `warpPerspective` (INTER_CUBIC,
//! BORDER_REPLICATE), plus Clipper's polygon offset (pyclipper, JT_ROUND).

/// An 8-bit image, rows of `w` pixels of `c` interleaved channels.
#[derive(Clone, Debug)]
pub struct Mat {
    pub w: usize,
    pub h: usize,
    pub c: usize,
    pub data: Vec<u8>,
}

impl Mat {
    pub fn new(w: usize, h: usize, c: usize) -> Mat {
        Mat {
            w,
            h,
            c,
            data: vec![0; w * h * c],
        }
    }

    #[inline]
    pub fn at(&self, x: usize, y: usize, k: usize) -> u8 {
        self.data[(y * self.w + x) * self.c + k]
    }
}

/// OpenCV's `cvRound` for floats: round half to even.
#[inline]
fn round_f32(v: f32) -> i32 {
    v.round_ties_even() as i32
}

#[inline]
fn round_f64(v: f64) -> i64 {
    v.round_ties_even() as i64
}

#[inline]
fn sat_i16(v: i64) -> i16 {
    v.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

#[inline]
fn sat_u8(v: i64) -> u8 {
    v.clamp(0, 255) as u8
}

/// `cvFloor` of a float.
#[inline]
fn floor_f32(v: f32) -> i32 {
    v.floor() as i32
}

// ---------------------------------------------------------------------------
// resize, INTER_LINEAR
// ---------------------------------------------------------------------------

const RESIZE_COEF_BITS: i32 = 11;
const RESIZE_COEF_SCALE: f32 = (1 << RESIZE_COEF_BITS) as f32;

/// An interpolation weight in 11-bit fixed point (`saturate_cast<short>`).
fn coef(v: f32) -> i32 {
    sat_i16(round_f32(v * RESIZE_COEF_SCALE) as i64) as i32
}

/// `cv2.resize(src, (dw, dh))` with the default INTER_LINEAR.
pub fn resize(src: &Mat, dw: usize, dh: usize) -> Mat {
    assert!(dw > 0 && dh > 0 && src.w > 0 && src.h > 0);
    if dw == src.w && dh == src.h {
        return src.clone();
    }
    let inv_scale_x = dw as f64 / src.w as f64;
    let inv_scale_y = dh as f64 / src.h as f64;
    let scale_x = 1.0 / inv_scale_x;
    let scale_y = 1.0 / inv_scale_y;
    let iscale_x = round_f64(scale_x);
    let iscale_y = round_f64(scale_y);
    let is_area_fast = (scale_x - iscale_x as f64).abs() < f64::EPSILON
        && (scale_y - iscale_y as f64).abs() < f64::EPSILON;
    // An exact halving is done as INTER_AREA, which averages 2x2 blocks.
    if is_area_fast && iscale_x == 2 && iscale_y == 2 {
        return resize_area_half(src, dw, dh);
    }
    let (sw, sh, cn) = (src.w as i32, src.h as i32, src.c);

    // Horizontal: source index and two coefficients per destination column.
    let mut xofs = vec![0usize; dw];
    let mut alpha = vec![[0i32; 2]; dw];
    for dx in 0..dw {
        let mut fx = ((dx as f64 + 0.5) * scale_x - 0.5) as f32;
        let mut sx = floor_f32(fx);
        fx -= sx as f32;
        if sx < 0 {
            fx = 0.0;
            sx = 0;
        }
        if sx >= sw - 1 {
            fx = 0.0;
            sx = sw - 1;
        }
        xofs[dx] = sx as usize;
        alpha[dx] = [coef(1.0 - fx), coef(fx)];
    }

    let width = dw * cn;
    let hresize = |row: usize| -> Vec<i32> {
        let s = &src.data[row * src.w * cn..(row + 1) * src.w * cn];
        let mut d = vec![0i32; width];
        for dx in 0..dw {
            let sx = xofs[dx];
            let sx1 = if (sx as i32) + 1 < sw { sx + 1 } else { sx };
            let [a0, a1] = alpha[dx];
            for k in 0..cn {
                d[dx * cn + k] = s[sx * cn + k] as i32 * a0 + s[sx1 * cn + k] as i32 * a1;
            }
        }
        d
    };

    let mut dst = Mat::new(dw, dh, cn);
    let mut cache: Option<(usize, Vec<i32>)> = None;
    for dy in 0..dh {
        let mut fy = ((dy as f64 + 0.5) * scale_y - 0.5) as f32;
        let sy = floor_f32(fy);
        fy -= sy as f32;
        let (b0, b1) = (coef(1.0 - fy), coef(fy));
        let r0 = sy.clamp(0, sh - 1) as usize;
        let r1 = (sy + 1).clamp(0, sh - 1) as usize;
        let s0 = match cache.take() {
            Some((r, v)) if r == r0 => v,
            _ => hresize(r0),
        };
        let s1 = if r1 == r0 { s0.clone() } else { hresize(r1) };
        let out = &mut dst.data[dy * width..(dy + 1) * width];
        vresize_linear(&s0, &s1, b0, b1, out);
        cache = Some((r1, s1));
    }
    dst
}

/// The vertical pass of the 8-bit linear resize, as OpenCV's SIMD code
/// computes it for every value: the horizontal sums are scaled down by 16,
/// multiplied by the coefficients keeping the high 16 bits, added, and
/// rounded to 8 bits.
fn vresize_linear(s0: &[i32], s1: &[i32], b0: i32, b1: i32, out: &mut [u8]) {
    for (i, o) in out.iter_mut().enumerate() {
        let a = sat_i16((s0[i] >> 4) as i64) as i32;
        let b = sat_i16((s1[i] >> 4) as i64) as i32;
        let t = sat_i16((((a * b0) >> 16) + ((b * b1) >> 16)) as i64) as i32;
        *o = sat_u8(((t + 2) >> 2) as i64);
    }
}

fn resize_area_half(src: &Mat, dw: usize, dh: usize) -> Mat {
    let cn = src.c;
    let mut dst = Mat::new(dw, dh, cn);
    for y in 0..dh {
        for x in 0..dw {
            for k in 0..cn {
                let s = src.at(2 * x, 2 * y, k) as u32
                    + src.at(2 * x + 1, 2 * y, k) as u32
                    + src.at(2 * x, 2 * y + 1, k) as u32
                    + src.at(2 * x + 1, 2 * y + 1, k) as u32;
                dst.data[(y * dw + x) * cn + k] = ((s + 2) >> 2) as u8;
            }
        }
    }
    dst
}

/// `cv2.copyMakeBorder(img, top, bottom, 0, 0, BORDER_CONSTANT, 0)`.
pub fn pad_rows(src: &Mat, top: usize, bottom: usize) -> Mat {
    let mut dst = Mat::new(src.w, src.h + top + bottom, src.c);
    let row = src.w * src.c;
    dst.data[top * row..(top + src.h) * row].copy_from_slice(&src.data);
    dst
}

/// `np.rot90(img)`: a quarter turn counter-clockwise.
pub fn rot90(src: &Mat) -> Mat {
    let (w, h, c) = (src.w, src.h, src.c);
    let mut dst = Mat::new(h, w, c);
    for i in 0..w {
        for j in 0..h {
            for k in 0..c {
                dst.data[(i * h + j) * c + k] = src.at(w - 1 - i, j, k);
            }
        }
    }
    dst
}

// ---------------------------------------------------------------------------
// Perspective crop: getPerspectiveTransform + warpPerspective(INTER_CUBIC)
// ---------------------------------------------------------------------------

/// `cv2.getPerspectiveTransform(src, dst)`: the 3x3 matrix (row-major)
/// mapping the four `src` points onto the four `dst` points.
pub fn perspective_transform(src: &[[f32; 2]; 4], dst: &[[f32; 2]; 4]) -> Option<[f64; 9]> {
    let mut a = [[0f64; 8]; 8];
    let mut b = [0f64; 8];
    for i in 0..4 {
        a[i][0] = src[i][0] as f64;
        a[i + 4][3] = src[i][0] as f64;
        a[i][1] = src[i][1] as f64;
        a[i + 4][4] = src[i][1] as f64;
        a[i][2] = 1.0;
        a[i + 4][5] = 1.0;
        a[i][6] = (-src[i][0] * dst[i][0]) as f64;
        a[i][7] = (-src[i][1] * dst[i][0]) as f64;
        a[i + 4][6] = (-src[i][0] * dst[i][1]) as f64;
        a[i + 4][7] = (-src[i][1] * dst[i][1]) as f64;
        b[i] = dst[i][0] as f64;
        b[i + 4] = dst[i][1] as f64;
    }
    if !lu_solve(&mut a, &mut b) {
        return None;
    }
    let mut m = [0f64; 9];
    m[..8].copy_from_slice(&b);
    m[8] = 1.0;
    Some(m)
}

/// Gaussian elimination with partial pivoting, as OpenCV's own `LU64f`.
/// (Builds of OpenCV with LAPACK, such as opencv-python's wheels, solve
/// with LAPACK's `dgesv` instead, whose result can differ in the last bit;
/// that moves a crop's sampling positions only when one falls exactly on a
/// rounding boundary.)
fn lu_solve(a: &mut [[f64; 8]; 8], b: &mut [f64; 8]) -> bool {
    let m = 8;
    let eps = f64::EPSILON * 100.0;
    for i in 0..m {
        let mut k = i;
        for j in i + 1..m {
            if a[j][i].abs() > a[k][i].abs() {
                k = j;
            }
        }
        if a[k][i].abs() < eps {
            return false;
        }
        if k != i {
            // (OpenCV swaps from column i on; the columns before are not
            // read again.)
            a.swap(i, k);
            b.swap(i, k);
        }
        let d = -1.0 / a[i][i];
        let pivot_row = a[i];
        for j in i + 1..m {
            let alpha = a[j][i] * d;
            for (x, p) in a[j][i + 1..].iter_mut().zip(&pivot_row[i + 1..]) {
                *x += alpha * p;
            }
            b[j] += alpha * b[i];
        }
        a[i][i] = -d;
    }
    for i in (0..m).rev() {
        let mut s = b[i];
        for k in i + 1..m {
            s -= a[i][k] * b[k];
        }
        b[i] = s * a[i][i];
    }
    true
}

/// The inverse of a 3x3 matrix, as `cv::invert(DECOMP_LU)` computes it for
/// that size (cofactors over the determinant).
fn invert3(s: &[f64; 9]) -> [f64; 9] {
    let at = |r: usize, c: usize| s[r * 3 + c];
    let det = at(0, 0) * (at(1, 1) * at(2, 2) - at(2, 1) * at(1, 2))
        - at(0, 1) * (at(1, 0) * at(2, 2) - at(2, 0) * at(1, 2))
        + at(0, 2) * (at(1, 0) * at(2, 1) - at(2, 0) * at(1, 1));
    if det == 0.0 {
        return [0.0; 9];
    }
    let d = 1.0 / det;
    [
        (at(1, 1) * at(2, 2) - at(1, 2) * at(2, 1)) * d,
        (at(0, 2) * at(2, 1) - at(0, 1) * at(2, 2)) * d,
        (at(0, 1) * at(1, 2) - at(0, 2) * at(1, 1)) * d,
        (at(1, 2) * at(2, 0) - at(1, 0) * at(2, 2)) * d,
        (at(0, 0) * at(2, 2) - at(0, 2) * at(2, 0)) * d,
        (at(0, 2) * at(1, 0) - at(0, 0) * at(1, 2)) * d,
        (at(1, 0) * at(2, 1) - at(1, 1) * at(2, 0)) * d,
        (at(0, 1) * at(2, 0) - at(0, 0) * at(2, 1)) * d,
        (at(0, 0) * at(1, 1) - at(0, 1) * at(1, 0)) * d,
    ]
}

const INTER_BITS: i32 = 5;
const INTER_TAB_SIZE: i32 = 1 << INTER_BITS;
const REMAP_COEF_BITS: i32 = 15;
const REMAP_COEF_SCALE: i32 = 1 << REMAP_COEF_BITS;

fn interpolate_cubic(x: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let c0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let c1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    let c3 = 1.0 - c0 - c1 - c2;
    [c0, c1, c2, c3]
}

/// OpenCV's fixed-point 4x4 bicubic weights for each of the 32x32
/// sub-pixel positions, each set adjusted to sum to exactly 1<<15.
fn cubic_table() -> &'static [[i32; 16]] {
    static TABLE: std::sync::OnceLock<Vec<[i32; 16]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(make_cubic_table)
}

fn make_cubic_table() -> Vec<[i32; 16]> {
    let scale = 1.0f32 / INTER_TAB_SIZE as f32;
    let tab1: Vec<[f32; 4]> = (0..INTER_TAB_SIZE)
        .map(|i| interpolate_cubic(i as f32 * scale))
        .collect();
    let mut out = Vec::with_capacity((INTER_TAB_SIZE * INTER_TAB_SIZE) as usize);
    for i in 0..INTER_TAB_SIZE as usize {
        for j in 0..INTER_TAB_SIZE as usize {
            let mut itab = [0i32; 16];
            let mut isum = 0;
            for k1 in 0..4 {
                let vy = tab1[i][k1];
                for k2 in 0..4 {
                    let v = vy * tab1[j][k2];
                    let iv = sat_i16(round_f32(v * REMAP_COEF_SCALE as f32) as i64) as i32;
                    itab[k1 * 4 + k2] = iv;
                    isum += iv;
                }
            }
            if isum != REMAP_COEF_SCALE {
                let diff = isum - REMAP_COEF_SCALE;
                let (ksize2, ksize) = (2usize, 4usize);
                let (mut mk1, mut mk2, mut big1, mut big2) = (ksize2, ksize2, ksize2, ksize2);
                for k1 in ksize2..ksize2 + 2 {
                    for k2 in ksize2..ksize2 + 2 {
                        if itab[k1 * ksize + k2] < itab[mk1 * ksize + mk2] {
                            mk1 = k1;
                            mk2 = k2;
                        } else if itab[k1 * ksize + k2] > itab[big1 * ksize + big2] {
                            big1 = k1;
                            big2 = k2;
                        }
                    }
                }
                if diff < 0 {
                    itab[big1 * ksize + big2] -= diff;
                } else {
                    itab[mk1 * ksize + mk2] -= diff;
                }
            }
            out.push(itab);
        }
    }
    out
}

/// `cv2.warpPerspective(src, M, (dw, dh), flags=INTER_CUBIC,
/// borderMode=BORDER_REPLICATE)`.
pub fn warp_perspective_cubic(src: &Mat, m_fwd: &[f64; 9], dw: usize, dh: usize) -> Mat {
    let m = invert3(m_fwd);
    let tab = cubic_table();
    let cn = src.c;
    let mut dst = Mat::new(dw, dh, cn);
    if dw == 0 || dh == 0 {
        return dst;
    }
    // OpenCV walks the destination in blocks; the block's first column is
    // part of how the source coordinates are summed, so it is kept.
    const BLOCK_SZ: usize = 32;
    let bh0 = (BLOCK_SZ / 2).min(dh);
    let bw0 = (BLOCK_SZ * BLOCK_SZ / bh0).min(dw);
    let (sw, sh) = (src.w as i64, src.h as i64);
    for y in 0..dh {
        let mut xb = 0;
        while xb < dw {
            let bw = bw0.min(dw - xb);
            let (xf, yf) = (xb as f64, y as f64);
            let x0 = m[0] * xf + m[1] * yf + m[2];
            let y0 = m[3] * xf + m[4] * yf + m[5];
            let w0 = m[6] * xf + m[7] * yf + m[8];
            for x1 in 0..bw {
                let x1f = x1 as f64;
                let mut w = w0 + m[6] * x1f;
                w = if w != 0.0 {
                    INTER_TAB_SIZE as f64 / w
                } else {
                    0.0
                };
                let fx = ((x0 + m[0] * x1f) * w).clamp(i32::MIN as f64, i32::MAX as f64);
                let fy = ((y0 + m[3] * x1f) * w).clamp(i32::MIN as f64, i32::MAX as f64);
                let xi = round_f64(fx) as i32;
                let yi = round_f64(fy) as i32;
                let sx = sat_i16((xi >> INTER_BITS) as i64) as i64 - 1;
                let sy = sat_i16((yi >> INTER_BITS) as i64) as i64 - 1;
                let a = ((yi & (INTER_TAB_SIZE - 1)) * INTER_TAB_SIZE + (xi & (INTER_TAB_SIZE - 1)))
                    as usize;
                let wt = &tab[a];
                let xs: [usize; 4] =
                    std::array::from_fn(|i| (sx + i as i64).clamp(0, sw - 1) as usize);
                let ys: [usize; 4] =
                    std::array::from_fn(|i| (sy + i as i64).clamp(0, sh - 1) as usize);
                for k in 0..cn {
                    let mut sum: i64 = 0;
                    for i in 0..4 {
                        let row = ys[i] * src.w;
                        for j in 0..4 {
                            sum += src.data[(row + xs[j]) * cn + k] as i64 * wt[i * 4 + j] as i64;
                        }
                    }
                    dst.data[(y * dw + xb + x1) * cn + k] =
                        sat_u8((sum + (1 << (REMAP_COEF_BITS - 1))) >> REMAP_COEF_BITS);
                }
            }
            xb += bw;
        }
    }
    dst
}

// ---------------------------------------------------------------------------
// Contours
// ---------------------------------------------------------------------------

/// Chain-code directions: right, up-right, up, up-left, left, down-left,
/// down, down-right.
const CODE_DELTAS: [[i32; 2]; 8] = [
    [1, 0],
    [1, -1],
    [0, -1],
    [-1, -1],
    [-1, 0],
    [-1, 1],
    [0, 1],
    [1, 1],
];

/// `cv2.findContours(mask, RETR_LIST, CHAIN_APPROX_SIMPLE)`: the borders of
/// the non-zero regions and of their holes (Suzuki and Abe's border
/// following), in OpenCV's order, with straight runs reduced to their end
/// points.
pub fn find_contours(mask: &[u8], w: usize, h: usize) -> Vec<Vec<[i32; 2]>> {
    // A zero frame around the image, as OpenCV adds one.
    let pw = w + 2;
    let ph = h + 2;
    let mut img = vec![0i8; pw * ph];
    for y in 0..h {
        for x in 0..w {
            if mask[y * w + x] != 0 {
                img[(y + 1) * pw + x + 1] = 1;
            }
        }
    }
    let mut contours = Vec::new();
    for y in 1..ph - 1 {
        let mut prev: i8 = 0;
        let mut x = 1;
        while x < pw - 1 {
            let p = img[y * pw + x];
            if p != prev {
                let is_hole = if prev == 0 && p == 1 {
                    Some(false)
                } else if p == 0 && prev >= 1 {
                    Some(true)
                } else {
                    None
                };
                match is_hole {
                    Some(hole) => {
                        let x0 = if hole { x - 1 } else { x };
                        contours.push(fetch_contour(&mut img, pw, x0, y, hole));
                        prev = img[y * pw + x];
                    }
                    None => prev = p,
                }
            }
            x += 1;
        }
    }
    // OpenCV hands the list back newest first.
    contours.reverse();
    contours
}

/// Follows one border from (x0, y0) (padded coordinates), marking it, and
/// returns its points (original coordinates).
fn fetch_contour(img: &mut [i8], pw: usize, x0: usize, y0: usize, is_hole: bool) -> Vec<[i32; 2]> {
    const NBD: i8 = 2;
    const RIGHT_BOUND: i8 = NBD | -128;
    let step = pw as isize;
    let d8: [isize; 8] = [1, -step + 1, -step, -step - 1, -1, step - 1, step, step + 1];
    let deltas: [isize; 16] = std::array::from_fn(|i| d8[i & 7]);
    let i0 = (y0 * pw + x0) as isize;
    let mut pt = [x0 as i32 - 1, y0 as i32 - 1];
    let mut out = Vec::new();

    let s_end0: usize = if is_hole { 0 } else { 4 };
    let mut s = s_end0;
    let mut i1;
    loop {
        s = (s + 7) & 7;
        i1 = i0 + deltas[s];
        if img[i1 as usize] != 0 || s == s_end0 {
            break;
        }
    }
    if s == s_end0 {
        // A single pixel.
        img[i0 as usize] = RIGHT_BOUND;
        out.push(pt);
        return out;
    }
    let mut i3 = i0;
    let mut prev_s = s ^ 4;
    loop {
        let s_end = s;
        let mut i4 = i3;
        while s < 15 {
            s += 1;
            i4 = i3 + deltas[s];
            if img[i4 as usize] != 0 {
                break;
            }
        }
        s &= 7;
        if s >= 1 && s - 1 < s_end {
            img[i3 as usize] = RIGHT_BOUND;
        } else if img[i3 as usize] == 1 {
            img[i3 as usize] = NBD;
        }
        if s != prev_s {
            out.push(pt);
            prev_s = s;
        }
        pt[0] += CODE_DELTAS[s][0];
        pt[1] += CODE_DELTAS[s][1];
        if i4 == i0 && i3 == i1 {
            break;
        }
        i3 = i4;
        s = (s + 4) & 7;
    }
    out
}

// ---------------------------------------------------------------------------
// Convex hull, minimum-area rectangle
// ---------------------------------------------------------------------------

fn sign(v: i64) -> i32 {
    (v > 0) as i32 - (v < 0) as i32
}

/// One chain of Sklansky's scan over the sorted points (`idx` indexes
/// `pts`), as OpenCV's `Sklansky_` for integer points.
fn sklansky(
    pts: &[[i32; 2]],
    idx: &[usize],
    start: usize,
    end: usize,
    stack: &mut [usize],
    nsign: i32,
    sign2: i32,
) -> usize {
    let incr: isize = if end > start { 1 } else { -1 };
    let p = |i: isize| pts[idx[i as usize]];
    let (start, end) = (start as isize, end as isize);
    let mut pprev = start;
    let mut pcur = pprev + incr;
    let mut pnext = pcur + incr;
    let mut stacksize = 3usize;

    if start == end || p(start) == p(end) {
        stack[0] = start as usize;
        return 1;
    }
    stack[0] = pprev as usize;
    stack[1] = pcur as usize;
    stack[2] = pnext as usize;
    let end = end + incr;
    while pnext != end {
        let cury = p(pcur)[1] as i64;
        let nexty = p(pnext)[1] as i64;
        let by = nexty - cury;
        if sign(by) != nsign {
            let ax = (p(pcur)[0] - p(pprev)[0]) as i64;
            let ay = cury - p(pprev)[1] as i64;
            let bx = (p(pnext)[0] - p(pcur)[0]) as i64;
            let convexity = ay * bx - ax * by;
            if sign(convexity) == sign2 && (ax != 0 || ay != 0) {
                pprev = pcur;
                pcur = pnext;
                pnext += incr;
                stack[stacksize] = pnext as usize;
                stacksize += 1;
            } else if pprev == start {
                pcur = pnext;
                stack[1] = pcur as usize;
                pnext += incr;
                stack[2] = pnext as usize;
            } else {
                stack[stacksize - 2] = pnext as usize;
                pcur = pprev;
                pprev = stack[stacksize - 4] as isize;
                stacksize -= 1;
            }
        } else {
            pnext += incr;
            stack[stacksize - 1] = pnext as usize;
        }
    }
    stacksize - 1
}

/// `cv2.convexHull(points, clockwise)` for integer points.
pub fn convex_hull(pts: &[[i32; 2]], clockwise: bool) -> Vec<[i32; 2]> {
    let total = pts.len();
    if total == 0 {
        return Vec::new();
    }
    let mut idx: Vec<usize> = (0..total).collect();
    idx.sort_by(|&a, &b| {
        pts[a][0]
            .cmp(&pts[b][0])
            .then(pts[a][1].cmp(&pts[b][1]))
            .then(a.cmp(&b))
    });
    let (mut miny_ind, mut maxy_ind) = (0, 0);
    for i in 1..total {
        let y = pts[idx[i]][1];
        if pts[idx[miny_ind]][1] > y {
            miny_ind = i;
        }
        if pts[idx[maxy_ind]][1] < y {
            maxy_ind = i;
        }
    }
    let mut hullbuf: Vec<usize> = Vec::with_capacity(total);
    if pts[idx[0]] == pts[idx[total - 1]] {
        hullbuf.push(idx[0]);
    } else {
        let mut stack = vec![0usize; total + 2];
        // Upper half.
        let mut tl = vec![0usize; total + 2];
        let mut tl_count = sklansky(pts, &idx, 0, maxy_ind, &mut tl, -1, 1);
        let mut tr = vec![0usize; total + 2];
        let mut tr_count = sklansky(pts, &idx, total - 1, maxy_ind, &mut tr, -1, -1);
        if !clockwise {
            std::mem::swap(&mut tl, &mut tr);
            std::mem::swap(&mut tl_count, &mut tr_count);
        }
        for i in 0..tl_count.saturating_sub(1) {
            hullbuf.push(idx[tl[i]]);
        }
        for i in (1..tr_count).rev() {
            hullbuf.push(idx[tr[i]]);
        }
        let stop_idx: isize = if tr_count > 2 {
            tr[1] as isize
        } else if tl_count > 2 {
            tl[tl_count - 2] as isize
        } else {
            -1
        };
        // Lower half.
        let mut bl = vec![0usize; total + 2];
        let mut bl_count = sklansky(pts, &idx, 0, miny_ind, &mut bl, 1, -1);
        let mut br = vec![0usize; total + 2];
        let mut br_count = sklansky(pts, &idx, total - 1, miny_ind, &mut br, 1, 1);
        if clockwise {
            std::mem::swap(&mut bl, &mut br);
            std::mem::swap(&mut bl_count, &mut br_count);
        }
        if stop_idx >= 0 {
            let check_idx: isize = if bl_count > 2 {
                bl[1] as isize
            } else if bl_count + br_count > 2 {
                br[2 - bl_count] as isize
            } else {
                -1
            };
            if check_idx == stop_idx
                || (check_idx >= 0 && pts[idx[check_idx as usize]] == pts[idx[stop_idx as usize]])
            {
                // All points on one line: the lower part mirrors the upper.
                bl_count = bl_count.min(2);
                br_count = br_count.min(2);
            }
        }
        for i in 0..bl_count.saturating_sub(1) {
            hullbuf.push(idx[bl[i]]);
        }
        for i in (1..br_count).rev() {
            hullbuf.push(idx[br[i]]);
        }
        // Rotate the output so that the input indices ascend or descend,
        // when that is possible.
        let nout = hullbuf.len();
        if nout >= 3 {
            let (mut min_idx, mut max_idx, mut lt) = (0usize, 0usize, 0usize);
            let mut i = 1;
            while i < nout {
                let v = hullbuf[i];
                lt += (hullbuf[i - 1] < v) as usize;
                if lt > 1 && lt + 2 <= i {
                    break;
                }
                if v < hullbuf[min_idx] {
                    min_idx = i;
                }
                if v > hullbuf[max_idx] {
                    max_idx = i;
                }
                i += 1;
            }
            let mmdist = (max_idx as isize - min_idx as isize).unsigned_abs();
            if (mmdist == 1 || mmdist == nout - 1) && (lt <= 1 || lt + 2 >= nout) {
                let ascending = (max_idx + 1) % nout == min_idx;
                let i0 = if ascending { min_idx } else { max_idx };
                let mut j = i0;
                if i0 > 0 {
                    let mut k = 0;
                    while k < nout {
                        let curr = hullbuf[j];
                        stack[k] = curr;
                        let next_j = if j + 1 < nout { j + 1 } else { 0 };
                        let next = hullbuf[next_j];
                        if k < nout - 1 && (ascending != (curr < next)) {
                            break;
                        }
                        j = next_j;
                        k += 1;
                    }
                    if k == nout {
                        hullbuf.copy_from_slice(&stack[..nout]);
                    }
                }
            }
        }
    }
    hullbuf.iter().map(|&i| pts[i]).collect()
}

/// OpenCV's RotatedRect: centre, size (width, height) and angle in degrees.
#[derive(Clone, Copy, Debug, Default)]
pub struct RotatedRect {
    pub cx: f32,
    pub cy: f32,
    pub w: f32,
    pub h: f32,
    pub angle: f32,
}

/// `cv2.minAreaRect(points)` (rotating calipers over the convex hull, as
/// OpenCV 4.5.4 to 4.12 compute it: angle in (0, 90]).
pub fn min_area_rect(pts: &[[i32; 2]]) -> RotatedRect {
    let hull = convex_hull(pts, false);
    let hp: Vec<[f32; 2]> = hull.iter().map(|p| [p[0] as f32, p[1] as f32]).collect();
    let n = hp.len();
    let mut b = RotatedRect::default();
    if n > 2 {
        let out = rotating_calipers(&hp);
        b.cx = out[0] + (out[2] + out[4]) * 0.5;
        b.cy = out[1] + (out[3] + out[5]) * 0.5;
        b.w = ((out[2] as f64) * (out[2] as f64) + (out[3] as f64) * (out[3] as f64)).sqrt() as f32;
        b.h = ((out[4] as f64) * (out[4] as f64) + (out[5] as f64) * (out[5] as f64)).sqrt() as f32;
        b.angle = (out[3] as f64).atan2(out[2] as f64) as f32;
    } else if n == 2 {
        b.cx = (hp[0][0] + hp[1][0]) * 0.5;
        b.cy = (hp[0][1] + hp[1][1]) * 0.5;
        let dx = (hp[1][0] - hp[0][0]) as f64;
        let dy = (hp[1][1] - hp[0][1]) as f64;
        b.w = (dx * dx + dy * dy).sqrt() as f32;
        b.h = 0.0;
        b.angle = dy.atan2(dx) as f32;
    } else if n == 1 {
        b.cx = hp[0][0];
        b.cy = hp[0][1];
    }
    b.angle = ((b.angle * 180.0) as f64 / std::f64::consts::PI) as f32;
    b
}

/// OpenCV's `rotatingCalipers` in CALIPERS_MINAREARECT mode: returns the
/// corner and the two side vectors of the smallest enclosing rectangle.
fn rotating_calipers(points: &[[f32; 2]]) -> [f32; 6] {
    let n = points.len();
    let mut minarea = f32::MAX;
    let mut vect = vec![[0f32; 2]; n];
    let mut inv_len = vec![0f32; n];
    let (mut left, mut bottom, mut right, mut top) = (0usize, 0usize, 0usize, 0usize);
    let mut pt0 = points[0];
    let (mut left_x, mut right_x, mut top_y, mut bottom_y) = (pt0[0], pt0[0], pt0[1], pt0[1]);
    for i in 0..n {
        if pt0[0] < left_x {
            left_x = pt0[0];
            left = i;
        }
        if pt0[0] > right_x {
            right_x = pt0[0];
            right = i;
        }
        if pt0[1] > top_y {
            top_y = pt0[1];
            top = i;
        }
        if pt0[1] < bottom_y {
            bottom_y = pt0[1];
            bottom = i;
        }
        let pt = points[if i + 1 < n { i + 1 } else { 0 }];
        let dx = (pt[0] - pt0[0]) as f64;
        let dy = (pt[1] - pt0[1]) as f64;
        vect[i] = [dx as f32, dy as f32];
        inv_len[i] = (1.0 / (dx * dx + dy * dy).sqrt()) as f32;
        pt0 = pt;
    }
    let (mut base_a, mut base_b);
    let mut seq = [bottom, right, top, left];
    let mut buf_idx = [0usize; 2];
    let mut buf = [0f32; 4]; // base_a, width, base_b, height
    for _ in 0..n {
        // The caliper side making the smallest angle with its polygon
        // edge: each edge turned into the first caliper's frame, then the
        // right-most one (sign of a dot product, not cosines).
        let v = |i: usize| vect[seq[i]];
        let rot = [
            v(0),
            [v(1)[1], -v(1)[0]],
            [-v(2)[0], -v(2)[1]],
            [-v(3)[1], v(3)[0]],
        ];
        // vec1 is right of vec2: vec1 turned 90 degrees clockwise has a
        // negative dot product with vec2.
        let is_right = |a: [f32; 2], b: [f32; 2]| a[1] * b[0] + (-a[0]) * b[1] < 0.0;
        let mut main_element = 0;
        for i in 1..4 {
            if is_right(rot[i], rot[main_element]) {
                main_element = i;
            }
        }
        let pindex = seq[main_element];
        let lead_x = vect[pindex][0] * inv_len[pindex];
        let lead_y = vect[pindex][1] * inv_len[pindex];
        match main_element {
            0 => {
                base_a = lead_x;
                base_b = lead_y;
            }
            1 => {
                base_a = lead_y;
                base_b = -lead_x;
            }
            2 => {
                base_a = -lead_x;
                base_b = -lead_y;
            }
            _ => {
                base_a = -lead_y;
                base_b = lead_x;
            }
        }
        seq[main_element] += 1;
        if seq[main_element] == n {
            seq[main_element] = 0;
        }
        let dx = points[seq[1]][0] - points[seq[3]][0];
        let dy = points[seq[1]][1] - points[seq[3]][1];
        let width = dx * base_a + dy * base_b;
        let dx = points[seq[2]][0] - points[seq[0]][0];
        let dy = points[seq[2]][1] - points[seq[0]][1];
        let height = -dx * base_b + dy * base_a;
        let area = width * height;
        if area <= minarea {
            minarea = area;
            buf_idx = [seq[3], seq[0]];
            buf = [base_a, width, base_b, height];
        }
    }
    let a1 = buf[0];
    let b1 = buf[2];
    let a2 = -buf[2];
    let b2 = buf[0];
    let c1 = a1 * points[buf_idx[0]][0] + points[buf_idx[0]][1] * b1;
    let c2 = a2 * points[buf_idx[1]][0] + points[buf_idx[1]][1] * b2;
    let idet = 1.0f32 / (a1 * b2 - a2 * b1);
    let px = (c1 * b2 - c2 * b1) * idet;
    let py = (a1 * c2 - a2 * c1) * idet;
    [px, py, a1 * buf[1], b1 * buf[1], a2 * buf[3], b2 * buf[3]]
}

/// `cv2.boxPoints(rect)`: the four corners.
pub fn box_points(r: &RotatedRect) -> [[f32; 2]; 4] {
    let angle = r.angle as f64 * std::f64::consts::PI / 180.0;
    let b = angle.cos() as f32 * 0.5;
    let a = angle.sin() as f32 * 0.5;
    let p0 = [r.cx - a * r.h - b * r.w, r.cy + b * r.h - a * r.w];
    let p1 = [r.cx + a * r.h - b * r.w, r.cy - b * r.h - a * r.w];
    let p2 = [2.0 * r.cx - p0[0], 2.0 * r.cy - p0[1]];
    let p3 = [2.0 * r.cx - p1[0], 2.0 * r.cy - p1[1]];
    [p0, p1, p2, p3]
}

// ---------------------------------------------------------------------------
// Polygon fill (for the mean score of a box)
// ---------------------------------------------------------------------------

const XY_SHIFT: i32 = 16;
const XY_ONE: i64 = 1 << XY_SHIFT;

/// `cv2.fillPoly(mask, [pts], 1)` on a `w`x`h` mask (8-connected outline
/// plus the scanline interior, as OpenCV draws it).
pub fn fill_poly(mask: &mut [u8], w: usize, h: usize, pts: &[[i32; 2]]) {
    struct Edge {
        y0: i64,
        y1: i64,
        x: i64,
        dx: i64,
    }
    let n = pts.len();
    if n == 0 {
        return;
    }
    let mut edges = Vec::new();
    let mut p0 = pts[n - 1];
    for &p1 in pts {
        line8(mask, w, h, p0, p1);
        let (y0, y1) = (p0[1] as i64, p1[1] as i64);
        // Edges that leave the image are replaced by their clipped part,
        // extended back to the original rows.
        let mut t0 = [p0[0] as i64, y0];
        let mut t1 = [p1[0] as i64, y1];
        let (mut c0y, mut c1y) = (y0, y1);
        let outside = |t: &[i64; 2]| t[0] < 0 || t[1] < 0 || t[0] >= w as i64 || t[1] >= h as i64;
        if outside(&t0) || outside(&t1) {
            clip_line(w as i64, h as i64, &mut t0, &mut t1);
            if t0[1] != t1[1] {
                c0y = t0[1];
                c1y = t1[1];
            }
        }
        let (c0x, c1x) = (t0[0] << XY_SHIFT, t1[0] << XY_SHIFT);
        if y0 != y1 {
            let dx = (c1x - c0x) / (c1y - c0y);
            if y0 < y1 {
                edges.push(Edge {
                    y0,
                    y1,
                    x: c0x + (y0 - c0y) * dx,
                    dx,
                });
            } else {
                edges.push(Edge {
                    y0: y1,
                    y1: y0,
                    x: c1x + (y1 - c1y) * dx,
                    dx,
                });
            }
        }
        p0 = p1;
    }
    if edges.len() < 2 {
        return;
    }
    let y_min = edges.iter().map(|e| e.y0).min().unwrap();
    let y_max = edges.iter().map(|e| e.y1).max().unwrap().min(h as i64);
    for y in y_min.max(0)..y_max {
        let mut xs: Vec<i64> = edges
            .iter()
            .filter(|e| e.y0 <= y && y < e.y1)
            .map(|e| e.x + (y - e.y0) * e.dx)
            .collect();
        xs.sort();
        for pair in xs.chunks(2) {
            if pair.len() < 2 {
                break;
            }
            let x1 = (pair[0] + XY_ONE - 1) >> XY_SHIFT;
            let x2 = pair[1] >> XY_SHIFT;
            if x1 < w as i64 && x2 >= 0 {
                let (x1, x2) = (x1.max(0) as usize, x2.min(w as i64 - 1) as usize);
                for x in x1..=x2 {
                    mask[y as usize * w + x] = 1;
                }
            }
        }
    }
}

/// OpenCV's `clipLine`: cuts the segment to the image; false if nothing
/// of it is inside.
fn clip_line(w: i64, h: i64, p1: &mut [i64; 2], p2: &mut [i64; 2]) -> bool {
    let (right, bottom) = (w - 1, h - 1);
    if w <= 0 || h <= 0 {
        return false;
    }
    let code = |p: &[i64; 2]| {
        (p[0] < 0) as i32
            + (p[0] > right) as i32 * 2
            + (p[1] < 0) as i32 * 4
            + (p[1] > bottom) as i32 * 8
    };
    let mut c1 = code(p1);
    let mut c2 = code(p2);
    if (c1 & c2) == 0 && (c1 | c2) != 0 {
        if c1 & 12 != 0 {
            let a = if c1 < 8 { 0 } else { bottom };
            p1[0] += ((a - p1[1]) as f64 * (p2[0] - p1[0]) as f64 / (p2[1] - p1[1]) as f64) as i64;
            p1[1] = a;
            c1 = (p1[0] < 0) as i32 + (p1[0] > right) as i32 * 2;
        }
        if c2 & 12 != 0 {
            let a = if c2 < 8 { 0 } else { bottom };
            p2[0] += ((a - p2[1]) as f64 * (p2[0] - p1[0]) as f64 / (p2[1] - p1[1]) as f64) as i64;
            p2[1] = a;
            c2 = (p2[0] < 0) as i32 + (p2[0] > right) as i32 * 2;
        }
        if (c1 & c2) == 0 && (c1 | c2) != 0 {
            if c1 != 0 {
                let a = if c1 == 1 { 0 } else { right };
                p1[1] +=
                    ((a - p1[0]) as f64 * (p2[1] - p1[1]) as f64 / (p2[0] - p1[0]) as f64) as i64;
                p1[0] = a;
                c1 = 0;
            }
            if c2 != 0 {
                let a = if c2 == 1 { 0 } else { right };
                p2[1] +=
                    ((a - p2[0]) as f64 * (p2[1] - p1[1]) as f64 / (p2[0] - p1[0]) as f64) as i64;
                p2[0] = a;
                c2 = 0;
            }
        }
    }
    (c1 | c2) == 0
}

/// An 8-connected line, as OpenCV's LineIterator walks it (clipped to the
/// image, from the left end).
fn line8(mask: &mut [u8], w: usize, h: usize, a: [i32; 2], b: [i32; 2]) {
    let mut p1 = [a[0] as i64, a[1] as i64];
    let mut p2 = [b[0] as i64, b[1] as i64];
    let inside = |p: &[i64; 2]| p[0] >= 0 && p[1] >= 0 && p[0] < w as i64 && p[1] < h as i64;
    if (!inside(&p1) || !inside(&p2)) && !clip_line(w as i64, h as i64, &mut p1, &mut p2) {
        return;
    }
    let (mut p, q) = if p2[0] < p1[0] { (p2, p1) } else { (p1, p2) };
    let dx = q[0] - p[0];
    let dy_signed = q[1] - p[1];
    let sy: i64 = if dy_signed < 0 { -1 } else { 1 };
    let dy = dy_signed.abs();
    let steep = dy > dx;
    let (major, minor) = if steep { (dy, dx) } else { (dx, dy) };
    let mut err = major - 2 * minor;
    for _ in 0..=major {
        if inside(&p) {
            mask[p[1] as usize * w + p[0] as usize] = 1;
        }
        let step_minor = err < 0;
        err += -2 * minor + if step_minor { 2 * major } else { 0 };
        if steep {
            p[1] += sy;
            if step_minor {
                p[0] += 1;
            }
        } else {
            p[0] += 1;
            if step_minor {
                p[1] += sy;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Clipper offset (pyclipper's PyclipperOffset, JT_ROUND, ET_CLOSEDPOLYGON)
// ---------------------------------------------------------------------------

/// Clipper's `Round`: half away from zero.
fn clipper_round(v: f64) -> i64 {
    if v < 0.0 {
        (v - 0.5) as i64
    } else {
        (v + 0.5) as i64
    }
}

/// The vertices of `path` offset outwards by `delta` with round joins
/// (miter limit 2, arc tolerance 0.25, pyclipper's defaults). The clean-up
/// union Clipper runs afterwards does not move the hull of a convex input,
/// which is all the caller uses.
pub fn offset_round(path: &[[i64; 2]], delta: f64) -> Vec<[i64; 2]> {
    // Strip the closing and consecutive duplicates.
    let mut high = path.len() as isize - 1;
    if high < 0 {
        return Vec::new();
    }
    while high > 0 && path[0] == path[high as usize] {
        high -= 1;
    }
    let mut poly: Vec<[i64; 2]> = vec![path[0]];
    for &p in &path[1..=high as usize] {
        if *poly.last().unwrap() != p {
            poly.push(p);
        }
    }
    if poly.len() < 3 {
        return Vec::new();
    }
    // Clipper wants positive orientation (area >= 0 in its convention).
    let mut area = 0f64;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        area += (poly[j][0] as f64 + poly[i][0] as f64) * (poly[j][1] as f64 - poly[i][1] as f64);
        j = i;
    }
    if -area * 0.5 < 0.0 {
        poly.reverse();
    }
    if delta.abs() < 1.0e-20 {
        return poly;
    }

    const ARC_TOLERANCE: f64 = 0.25;
    const DEF_ARC_TOLERANCE: f64 = 0.25;
    let pi = std::f64::consts::PI;
    let y = if ARC_TOLERANCE > delta.abs() * DEF_ARC_TOLERANCE {
        delta.abs() * DEF_ARC_TOLERANCE
    } else {
        ARC_TOLERANCE
    };
    let mut steps = pi / (1.0 - y / delta.abs()).acos();
    if steps > delta.abs() * pi {
        steps = delta.abs() * pi;
    }
    let mut sin = (2.0 * pi / steps).sin();
    let cos = (2.0 * pi / steps).cos();
    let steps_per_rad = steps / (2.0 * pi);
    if delta < 0.0 {
        sin = -sin;
    }

    let len = poly.len();
    let normal = |a: [i64; 2], b: [i64; 2]| -> [f64; 2] {
        if a == b {
            return [0.0, 0.0];
        }
        let mut dx = (b[0] - a[0]) as f64;
        let mut dy = (b[1] - a[1]) as f64;
        let f = 1.0 / (dx * dx + dy * dy).sqrt();
        dx *= f;
        dy *= f;
        [dy, -dx]
    };
    let mut normals = Vec::with_capacity(len);
    for j in 0..len - 1 {
        normals.push(normal(poly[j], poly[j + 1]));
    }
    normals.push(normal(poly[len - 1], poly[0]));

    let mut out = Vec::new();
    let mut k = len - 1;
    for j in 0..len {
        let nk = normals[k];
        let nj = normals[j];
        let src = poly[j];
        let mut sin_a = nk[0] * nj[1] - nj[0] * nk[1];
        let push = |out: &mut Vec<[i64; 2]>, n: [f64; 2]| {
            out.push([
                clipper_round(src[0] as f64 + n[0] * delta),
                clipper_round(src[1] as f64 + n[1] * delta),
            ]);
        };
        if (sin_a * delta).abs() < 1.0 {
            let cos_a = nk[0] * nj[0] + nj[1] * nk[1];
            if cos_a > 0.0 {
                push(&mut out, nk);
                continue; // k stays: Clipper returns before `k = j`
            }
        } else {
            sin_a = sin_a.clamp(-1.0, 1.0);
        }
        if sin_a * delta < 0.0 {
            push(&mut out, nk);
            out.push(src);
            push(&mut out, nj);
        } else {
            // Round join.
            let a = sin_a.atan2(nk[0] * nj[0] + nk[1] * nj[1]);
            let n_steps = (clipper_round(steps_per_rad * a.abs()) as i32).max(1);
            let (mut x, mut yv) = (nk[0], nk[1]);
            for _ in 0..n_steps {
                out.push([
                    clipper_round(src[0] as f64 + x * delta),
                    clipper_round(src[1] as f64 + yv * delta),
                ]);
                let x2 = x;
                x = x * cos - sin * yv;
                yv = x2 * sin + yv * cos;
            }
            push(&mut out, nj);
        }
        k = j;
    }
    out
}
