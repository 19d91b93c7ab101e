//! RapidOCR 1.4.4's pipeline (rapidocr_onnxruntime, default config.yaml)
//! without the angle classifier: PP-OCRv4 text detection with DB
//! post-processing, boxes sorted into reading order, perspective crops, and
//! recognition with CTC decoding. Each step follows the Python code,
//! including where it computes in float32 or float64, so that the same
//! models give the same boxes and text.

use crate::cv::{self, Mat};

pub type Result<T> = std::result::Result<T, String>;

/// The two networks, run by whoever hosts them.
pub trait Nets {
    /// Runs the detector on a [1, 3, h, w] tensor; returns the [1, 1, h, w]
    /// probability map.
    fn det(&mut self, input: &[f32], h: usize, w: usize) -> Result<Vec<f32>>;
    /// Runs the recogniser on an [n, 3, 48, w] tensor; returns the
    /// [n, t, classes] output as (t, values).
    fn rec(
        &mut self,
        input: &[f32],
        n: usize,
        w: usize,
        classes: usize,
    ) -> Result<(usize, Vec<f32>)>;
}

// Global settings (config.yaml).
const TEXT_SCORE: f64 = 0.5;
const MIN_HEIGHT: usize = 30;
const WIDTH_HEIGHT_RATIO: f64 = 8.0;
const MAX_SIDE_LEN: usize = 2000;
const MIN_SIDE_LEN: usize = 30;
// Det.
const LIMIT_SIDE_LEN: f64 = 736.0;
const DET_THRESH: f32 = 0.3;
const BOX_THRESH: f64 = 0.5;
const MAX_CANDIDATES: usize = 1000;
const UNCLIP_RATIO: f64 = 1.6;
const MIN_SIZE: f64 = 3.0;
// Rec.
const REC_H: usize = 48;
const REC_W: usize = 320;
const REC_BATCH: usize = 6;

/// One recognised text box.
pub struct TextLine {
    /// Corners (top-left, top-right, bottom-right, bottom-left) in the
    /// input image's coordinates.
    pub points: [[f32; 2]; 4],
    pub text: String,
    pub score: f64,
}

/// Python's `round()` on a float: half to even.
fn py_round(v: f64) -> f64 {
    v.round_ties_even()
}

/// `reduce_max_side` / `increase_min_side`: scales so that the chosen side
/// becomes `target`, both sides rounded to multiples of 32.
fn scale_to_multiple_of_32(img: &Mat, ratio: f64) -> Result<(Mat, f64, f64)> {
    let (h, w) = (img.h, img.w);
    let resize_h = (h as f64 * ratio) as i64;
    let resize_w = (w as f64 * ratio) as i64;
    let resize_h = (py_round(resize_h as f64 / 32.0) * 32.0) as i64;
    let resize_w = (py_round(resize_w as f64 / 32.0) * 32.0) as i64;
    if resize_w <= 0 || resize_h <= 0 {
        return Err(format!("cannot scale a {w}x{h} image for detection"));
    }
    let out = cv::resize(img, resize_w as usize, resize_h as usize);
    Ok((out, h as f64 / resize_h as f64, w as f64 / resize_w as f64))
}

/// `RapidOCR.preprocess`: bounds the longer side to 2000 and the shorter
/// side to at least 30.
fn preprocess(img: Mat) -> Result<(Mat, f64, f64)> {
    let (mut img, mut ratio_h, mut ratio_w) = (img, 1.0, 1.0);
    let max_value = img.h.max(img.w);
    if max_value > MAX_SIDE_LEN {
        let ratio = if img.h > img.w {
            MAX_SIDE_LEN as f64 / img.h as f64
        } else {
            MAX_SIDE_LEN as f64 / img.w as f64
        };
        (img, ratio_h, ratio_w) = scale_to_multiple_of_32(&img, ratio)?;
    }
    let min_value = img.h.min(img.w);
    if min_value < MIN_SIDE_LEN {
        let ratio = if img.h < img.w {
            MIN_SIDE_LEN as f64 / img.h as f64
        } else {
            MIN_SIDE_LEN as f64 / img.w as f64
        };
        (img, ratio_h, ratio_w) = scale_to_multiple_of_32(&img, ratio)?;
    }
    Ok((img, ratio_h, ratio_w))
}

/// `maybe_add_letterbox`: pads flat or very wide images with black rows
/// above and below. Returns the image and the rows added on top.
fn maybe_add_letterbox(img: Mat) -> (Mat, usize) {
    let (h, w) = (img.h, img.w);
    let use_limit_ratio = w as f64 / h as f64 > WIDTH_HEIGHT_RATIO;
    if h <= MIN_HEIGHT || use_limit_ratio {
        let new_h = ((w as f64 / WIDTH_HEIGHT_RATIO) as usize).max(MIN_HEIGHT) * 2;
        let padding_h = ((new_h as f64 - h as f64).abs() / 2.0) as usize;
        return (cv::pad_rows(&img, padding_h, padding_h), padding_h);
    }
    (img, 0)
}

/// `DetPreProcess`: resizes so the shorter side is at least 736 (both
/// sides multiples of 32), normalises to [-1, 1] and lays out as CHW
/// (channels in the image's BGR order).
fn det_input(img: &Mat) -> Option<(Vec<f32>, usize, usize)> {
    let (h, w) = (img.h, img.w);
    let ratio = if (h.min(w) as f64) < LIMIT_SIDE_LEN {
        if h < w {
            LIMIT_SIDE_LEN / h as f64
        } else {
            LIMIT_SIDE_LEN / w as f64
        }
    } else {
        1.0
    };
    let resize_h = (h as f64 * ratio) as i64;
    let resize_w = (w as f64 * ratio) as i64;
    let resize_h = (py_round(resize_h as f64 / 32.0) * 32.0) as i64;
    let resize_w = (py_round(resize_w as f64 / 32.0) * 32.0) as i64;
    if resize_w <= 0 || resize_h <= 0 {
        return None;
    }
    let (rw, rh) = (resize_w as usize, resize_h as usize);
    let resized = cv::resize(img, rw, rh);
    // (v.astype(float32) * (1/255)) in float32, then (x - 0.5) / 0.5 in
    // float64, then float32.
    let scale = (1.0f64 / 255.0) as f32;
    let mut out = vec![0f32; 3 * rh * rw];
    for y in 0..rh {
        for x in 0..rw {
            for k in 0..3 {
                let v = resized.data[(y * rw + x) * 3 + k] as f32 * scale;
                out[k * rh * rw + y * rw + x] = ((v as f64 - 0.5) / 0.5) as f32;
            }
        }
    }
    Some((out, rh, rw))
}

/// `get_mini_boxes`: the corners of the minimum-area rectangle, ordered
/// from the left-most pair (top first) clockwise, and its shorter side.
fn mini_box(points: &[[i32; 2]]) -> ([[f32; 2]; 4], f64) {
    let rect = cv::min_area_rect(points);
    let mut pts = cv::box_points(&rect).to_vec();
    // Python's sorted() is stable.
    pts.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap_or(std::cmp::Ordering::Equal));
    let (i1, i4) = if pts[1][1] > pts[0][1] {
        (0, 1)
    } else {
        (1, 0)
    };
    let (i2, i3) = if pts[3][1] > pts[2][1] {
        (2, 3)
    } else {
        (3, 2)
    };
    let sside = (rect.w.min(rect.h)) as f64;
    ([pts[i1], pts[i2], pts[i3], pts[i4]], sside)
}

/// `box_score_fast`: the mean probability inside the box.
fn box_score_fast(pred: &[f32], w: usize, h: usize, bx: &[[f32; 2]; 4]) -> f64 {
    let minx = bx.iter().map(|p| p[0]).fold(f32::INFINITY, f32::min);
    let maxx = bx.iter().map(|p| p[0]).fold(f32::NEG_INFINITY, f32::max);
    let miny = bx.iter().map(|p| p[1]).fold(f32::INFINITY, f32::min);
    let maxy = bx.iter().map(|p| p[1]).fold(f32::NEG_INFINITY, f32::max);
    let clip = |v: f32, hi: usize| (v as i32).clamp(0, hi as i32 - 1) as usize;
    let xmin = clip(minx.floor(), w);
    let xmax = clip(maxx.ceil(), w);
    let ymin = clip(miny.floor(), h);
    let ymax = clip(maxy.ceil(), h);
    let (mw, mh) = (xmax - xmin + 1, ymax - ymin + 1);
    let mut mask = vec![0u8; mw * mh];
    let poly: Vec<[i32; 2]> = bx
        .iter()
        .map(|p| {
            let x = (p[0] as f64 - xmin as f64) as f32;
            let y = (p[1] as f64 - ymin as f64) as f32;
            [x as i32, y as i32]
        })
        .collect();
    cv::fill_poly(&mut mask, mw, mh, &poly);
    let (mut sum, mut count) = (0f64, 0usize);
    for y in 0..mh {
        for x in 0..mw {
            if mask[y * mw + x] != 0 {
                sum += pred[(ymin + y) * w + xmin + x] as f64;
                count += 1;
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

/// `unclip`: grows the box by area * 1.6 / perimeter with Clipper's round
/// offset (the box's coordinates truncated to integers, as pyclipper
/// takes them).
fn unclip(bx: &[[f32; 2]; 4]) -> Vec<[i32; 2]> {
    // Shapely (GEOS) area and length of the closed ring.
    let ring: Vec<[f64; 2]> = bx
        .iter()
        .chain(std::iter::once(&bx[0]))
        .map(|p| [p[0] as f64, p[1] as f64])
        .collect();
    let n = ring.len();
    let x0 = ring[0][0];
    let mut sum = 0f64;
    for i in 1..n - 1 {
        let x = ring[i][0] - x0;
        sum += x * (ring[i - 1][1] - ring[i + 1][1]);
    }
    let area = (sum / 2.0).abs();
    let mut length = 0f64;
    for i in 1..n {
        let dx = ring[i][0] - ring[i - 1][0];
        let dy = ring[i][1] - ring[i - 1][1];
        length += (dx * dx + dy * dy).sqrt();
    }
    let distance = area * UNCLIP_RATIO / length;
    let path: Vec<[i64; 2]> = bx.iter().map(|p| [p[0] as i64, p[1] as i64]).collect();
    cv::offset_round(&path, distance)
        .into_iter()
        .map(|p| [p[0] as i32, p[1] as i32])
        .collect()
}

/// `DBPostProcess`: boxes (in the detector input's source image
/// coordinates, `dest_w` x `dest_h`) from the probability map.
fn boxes_from_pred(
    pred: &[f32],
    w: usize,
    h: usize,
    dest_w: usize,
    dest_h: usize,
) -> Vec<[[i32; 2]; 4]> {
    // pred > 0.3, dilated with a 2x2 kernel (anchor at its centre: each
    // pixel takes the maximum of itself and its up, left and up-left
    // neighbours).
    let seg: Vec<u8> = pred.iter().map(|&p| (p > DET_THRESH) as u8).collect();
    let mut mask = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut v = seg[y * w + x];
            if x > 0 {
                v |= seg[y * w + x - 1];
            }
            if y > 0 {
                v |= seg[(y - 1) * w + x];
                if x > 0 {
                    v |= seg[(y - 1) * w + x - 1];
                }
            }
            mask[y * w + x] = v;
        }
    }
    let contours = cv::find_contours(&mask, w, h);
    let mut boxes = Vec::new();
    for contour in contours.iter().take(MAX_CANDIDATES) {
        let (points, sside) = mini_box(contour);
        if sside < MIN_SIZE {
            continue;
        }
        let score = box_score_fast(pred, w, h, &points);
        if BOX_THRESH > score {
            continue;
        }
        let expanded = unclip(&points);
        if expanded.is_empty() {
            continue;
        }
        let (bx, sside) = mini_box(&expanded);
        if sside < MIN_SIZE + 2.0 {
            continue;
        }
        let mut out = [[0i32; 2]; 4];
        for (o, p) in out.iter_mut().zip(bx.iter()) {
            let x = (p[0] / w as f32 * dest_w as f32)
                .round_ties_even()
                .clamp(0.0, dest_w as f32);
            let y = (p[1] / h as f32 * dest_h as f32)
                .round_ties_even()
                .clamp(0.0, dest_h as f32);
            *o = [x as i32, y as i32];
        }
        boxes.push(out);
    }
    boxes
}

/// `filter_tag_det_res`: orders each box's corners (top-left, top-right,
/// bottom-right, bottom-left), clips them to the image and drops boxes
/// no more than 3 pixels wide or high.
fn filter_boxes(boxes: Vec<[[i32; 2]; 4]>, img_w: usize, img_h: usize) -> Vec<[[f32; 2]; 4]> {
    let mut out = Vec::new();
    for bx in boxes {
        let mut idx = [0usize, 1, 2, 3];
        idx.sort_by_key(|&i| bx[i][0]);
        let mut left = [bx[idx[0]], bx[idx[1]]];
        let mut right = [bx[idx[2]], bx[idx[3]]];
        left.sort_by_key(|p| p[1]);
        right.sort_by_key(|p| p[1]);
        let rect = [left[0], right[0], right[1], left[1]];
        let mut r = [[0f32; 2]; 4];
        for (o, p) in r.iter_mut().zip(rect.iter()) {
            let x = p[0].max(0).min(img_w as i32 - 1);
            let y = p[1].max(0).min(img_h as i32 - 1);
            *o = [x as f32, y as f32];
        }
        let norm = |a: [f32; 2], b: [f32; 2]| {
            let (dx, dy) = (a[0] - b[0], a[1] - b[1]);
            (dx * dx + dy * dy).sqrt()
        };
        let rect_width = norm(r[0], r[1]) as i32;
        let rect_height = norm(r[0], r[3]) as i32;
        if rect_width <= 3 || rect_height <= 3 {
            continue;
        }
        out.push(r);
    }
    out
}

/// `sorted_boxes`: top to bottom, then left to right within a line (boxes
/// whose tops are less than 10 pixels apart).
fn sort_boxes(mut boxes: Vec<[[f32; 2]; 4]>) -> Vec<[[f32; 2]; 4]> {
    boxes.sort_by(|a, b| {
        (a[0][1], a[0][0])
            .partial_cmp(&(b[0][1], b[0][0]))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let n = boxes.len();
    for i in 0..n.saturating_sub(1) {
        for j in (0..=i).rev() {
            if (boxes[j + 1][0][1] - boxes[j][0][1]).abs() < 10.0
                && boxes[j + 1][0][0] < boxes[j][0][0]
            {
                boxes.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
    boxes
}

/// `get_rotate_crop_image`: the box's contents straightened to a
/// rectangle; tall results are turned a quarter.
fn crop(img: &Mat, pts: &[[f32; 2]; 4]) -> Result<Mat> {
    let norm = |a: [f32; 2], b: [f32; 2]| {
        let (dx, dy) = (a[0] - b[0], a[1] - b[1]);
        (dx * dx + dy * dy).sqrt()
    };
    let cw = norm(pts[0], pts[1]).max(norm(pts[2], pts[3])) as usize;
    let ch = norm(pts[0], pts[3]).max(norm(pts[1], pts[2])) as usize;
    let dst = [
        [0.0, 0.0],
        [cw as f32, 0.0],
        [cw as f32, ch as f32],
        [0.0, ch as f32],
    ];
    let m = cv::perspective_transform(pts, &dst).ok_or("degenerate text box")?;
    let out = cv::warp_perspective_cubic(img, &m, cw, ch);
    if out.w > 0 && out.h as f64 / out.w as f64 >= 1.5 {
        return Ok(cv::rot90(&out));
    }
    Ok(out)
}

/// `TextRecognizer.resize_norm_img`: height 48, width from the aspect
/// ratio, values to [-1, 1] (float32), zero padding on the right up to
/// `48 * max_wh_ratio`.
fn rec_input(img: &Mat, max_wh_ratio: f64, out: &mut [f32]) {
    let img_width = (REC_H as f64 * max_wh_ratio) as usize;
    let ratio = img.w as f64 / img.h as f64;
    let ceil_w = (REC_H as f64 * ratio).ceil() as usize;
    let resized_w = if ceil_w > img_width {
        img_width
    } else {
        ceil_w
    };
    let resized = cv::resize(img, resized_w.max(1), REC_H);
    for k in 0..3 {
        for y in 0..REC_H {
            for x in 0..resized_w {
                let v = resized.data[(y * resized_w + x) * 3 + k] as f32 / 255.0;
                out[k * REC_H * img_width + y * img_width + x] = (v - 0.5) / 0.5;
            }
        }
    }
}

/// `CTCLabelDecode`: best class per step, repeats and blanks removed; the
/// score is the mean probability of the kept steps.
fn ctc_decode(probs: &[f32], t: usize, classes: usize, charset: &[String]) -> (String, f64) {
    let mut text = String::new();
    let mut conf = Vec::new();
    let mut prev: Option<usize> = None;
    for s in 0..t {
        let row = &probs[s * classes..(s + 1) * classes];
        let (mut best, mut best_p) = (0usize, row[0]);
        for (i, &p) in row.iter().enumerate().skip(1) {
            if p > best_p {
                best = i;
                best_p = p;
            }
        }
        let keep = prev != Some(best) && best != 0;
        prev = Some(best);
        if keep {
            text.push_str(&charset[best]);
            conf.push(best_p as f64);
        }
    }
    if conf.is_empty() {
        conf.push(0.0);
    }
    let score = conf.iter().sum::<f64>() / conf.len() as f64;
    (text, score)
}

/// Recognises the crops in batches of 6 sorted by aspect ratio, as
/// `TextRecognizer.__call__` does (the batch decides the padded width).
fn recognize(crops: &[Mat], nets: &mut dyn Nets, charset: &[String]) -> Result<Vec<(String, f64)>> {
    let classes = charset.len();
    let ratios: Vec<f64> = crops.iter().map(|c| c.w as f64 / c.h as f64).collect();
    let mut order: Vec<usize> = (0..crops.len()).collect();
    order.sort_by(|&a, &b| {
        ratios[a]
            .partial_cmp(&ratios[b])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut results = vec![(String::new(), 0.0); crops.len()];
    for batch in order.chunks(REC_BATCH) {
        let mut max_wh_ratio = REC_W as f64 / REC_H as f64;
        for &i in batch {
            let wh = crops[i].w as f64 / crops[i].h as f64;
            max_wh_ratio = max_wh_ratio.max(wh);
        }
        let width = (REC_H as f64 * max_wh_ratio) as usize;
        let per = 3 * REC_H * width;
        let mut input = vec![0f32; batch.len() * per];
        for (b, &i) in batch.iter().enumerate() {
            rec_input(&crops[i], max_wh_ratio, &mut input[b * per..(b + 1) * per]);
        }
        let (t, out) = nets.rec(&input, batch.len(), width, classes)?;
        for (b, &i) in batch.iter().enumerate() {
            let probs = &out[b * t * classes..(b + 1) * t * classes];
            results[i] = ctc_decode(probs, t, classes, charset);
        }
    }
    Ok(results)
}

/// The recogniser's classes: CTC blank, the dictionary, and a space.
pub fn charset(keys: &[String]) -> Vec<String> {
    let mut c = Vec::with_capacity(keys.len() + 2);
    c.push("blank".to_string());
    c.extend(keys.iter().cloned());
    c.push(" ".to_string());
    c
}

/// Reads a dictionary file as RapidOCR's `read_character_file` does: one
/// entry per line, line ends stripped.
pub fn parse_keys(bytes: &[u8]) -> Result<Vec<String>> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("dictionary is not UTF-8: {e}"))?;
    let mut keys = Vec::new();
    for line in text.split_inclusive('\n') {
        keys.push(line.trim_matches(|c| c == '\r' || c == '\n').to_string());
    }
    Ok(keys)
}

/// The whole pipeline on a BGR image.
pub fn run(img: Mat, nets: &mut dyn Nets, charset: &[String]) -> Result<Vec<TextLine>> {
    let (raw_h, raw_w) = (img.h, img.w);
    let (img, ratio_h, ratio_w) = preprocess(img)?;
    let (img, pad_top) = maybe_add_letterbox(img);

    let Some((input, dh, dw)) = det_input(&img) else {
        return Ok(Vec::new());
    };
    let pred = nets.det(&input, dh, dw)?;
    if pred.len() != dh * dw {
        return Err(format!(
            "the detector returned {} values, expected {}x{}",
            pred.len(),
            dh,
            dw
        ));
    }
    let boxes = boxes_from_pred(&pred, dw, dh, img.w, img.h);
    let boxes = filter_boxes(boxes, img.w, img.h);
    if boxes.is_empty() {
        return Ok(Vec::new());
    }
    let boxes = sort_boxes(boxes);
    let crops = boxes
        .iter()
        .map(|b| crop(&img, b))
        .collect::<Result<Vec<_>>>()?;
    let texts = recognize(&crops, nets, charset)?;

    let mut lines = Vec::new();
    for (bx, (text, score)) in boxes.iter().zip(texts) {
        if score < TEXT_SCORE {
            continue;
        }
        // Back to the input image: undo the letterbox, then the scaling.
        let mut points = *bx;
        for p in points.iter_mut() {
            p[1] -= pad_top as f32;
            p[0] *= ratio_w as f32;
            p[1] *= ratio_h as f32;
            p[0] = if p[0] < 0.0 { 0.0 } else { p[0] };
            p[1] = if p[1] < 0.0 { 0.0 } else { p[1] };
            p[0] = p[0].min(raw_w as f32);
            p[1] = p[1].min(raw_h as f32);
        }
        lines.push(TextLine {
            points,
            text,
            score,
        });
    }
    Ok(lines)
}
