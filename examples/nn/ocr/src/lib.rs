//! PP-OCRv4 text reading, shared by the `nn-ocr` command and the
//! `http-ocr` wasi:http component: RapidOCR 1.4.4's pipeline (`ocr`), the
//! OpenCV routines it needs (`cv`), PNG decoding (`image`), and the two
//! networks run by the host through wasi-nn (`WasiNets`).

pub mod cv;
pub mod image;
pub mod ocr;

use nn_common::{Input, Model};

/// The two graphs, run through wasi-nn.
pub struct WasiNets {
    pub det: Model,
    pub rec: Model,
}

impl ocr::Nets for WasiNets {
    fn det(&mut self, input: &[f32], h: usize, w: usize) -> ocr::Result<Vec<f32>> {
        let out = self
            .det
            .run_f32(&[Input::f32("x", &[1, 3, h, w], input)], &[h * w])
            .map_err(|e| e.0)?;
        Ok(out.into_iter().next().unwrap_or_default())
    }

    fn rec(
        &mut self,
        input: &[f32],
        n: usize,
        w: usize,
        classes: usize,
    ) -> ocr::Result<(usize, Vec<f32>)> {
        // PP-OCRv4's recogniser gives about one step per 8 columns.
        let steps = w as f64 / 8.0;
        let expected = n * (steps.ceil() as usize + 1) * classes;
        let out = self
            .rec
            .run_f32(&[Input::f32("x", &[n, 3, 48, w], input)], &[expected])
            .map_err(|e| e.0)?;
        let out = out.into_iter().next().unwrap_or_default();
        let t = out.len() / (n * classes).max(1);
        if out.is_empty() || out.len() != n * t * classes || (t as f64 - steps).abs() > 1.5 {
            // The model's class count, from a plausible number of steps.
            let lo = (steps.floor() as usize).saturating_sub(1).max(1);
            let per_step = (lo..=steps.ceil() as usize + 1)
                .find(|&t| out.len() % (n * t) == 0)
                .map_or_else(
                    || "an unexpected number of".to_string(),
                    |t| (out.len() / (n * t)).to_string(),
                );
            return Err(format!(
                "graph {} gives {per_step} values per step, the dictionary has {} entries ({classes} classes): are they the recogniser and its dictionary?",
                self.rec.name(),
                classes - 2
            ));
        }
        Ok((t, out))
    }
}
