//! `ocr`: reads the text in the PNG image POSTed to it with PP-OCRv4, run
//! by the host through `wasi:nn`, and answers with one line per text box in
//! reading order (`text/plain`). `?boxes` adds each box's corners and score
//! (`x,y x,y x,y x,y<TAB>score<TAB>text`), as `nn-ocr --boxes` prints them.
//!
//! The route grants the two graphs (`nn_graphs = { det = ..., rec = ... }`
//! or an `nn_dir` holding `det.onnx` and `rec.onnx`) and the recogniser's
//! dictionary as a file: `OCR_KEYS` names it (default
//! `/models/ppocr_keys.txt`). `OCR_DET` and `OCR_REC` rename the graphs.
//!
//! Answers: 200 with the text (empty when the image has none); 405 for a
//! method other than POST; 400 when the body is not a PNG image; 500 when
//! the models or the dictionary are missing or inference fails. Every error
//! body is one line saying why.

use http_common::wasip2::exports::http::incoming_handler::Guest;
use http_common::wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};
use nn_common::{read_file, Model};
use nn_ocr::{image, ocr, WasiNets};

struct Ocr;

const TEXT: (&str, &str) = ("content-type", "text/plain; charset=utf-8");

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Where a request failed: the status and the one-line reason.
struct Failure(u16, String);

fn read(png: &[u8], boxes: bool) -> Result<String, Failure> {
    let img = image::load_png(png, "request body").map_err(|e| Failure(400, e))?;
    let internal = |e: String| Failure(500, e);
    let keys_path = env("OCR_KEYS", "/models/ppocr_keys.txt");
    let keys = read_file(&keys_path)
        .map_err(|e| e.0)
        .and_then(|b| ocr::parse_keys(&b))
        .map_err(internal)?;
    if keys.is_empty() {
        return Err(internal(format!("{keys_path}: empty dictionary")));
    }
    let charset = ocr::charset(&keys);
    let det = Model::load(&env("OCR_DET", "det")).map_err(|e| internal(e.0))?;
    let rec = Model::load(&env("OCR_REC", "rec")).map_err(|e| internal(e.0))?;
    let lines = ocr::run(img, &mut WasiNets { det, rec }, &charset).map_err(internal)?;
    let mut out = String::new();
    for line in &lines {
        if boxes {
            let corners: Vec<String> = line
                .points
                .iter()
                .map(|p| format!("{},{}", p[0], p[1]))
                .collect();
            out.push_str(&format!("{}\t{:.5}\t", corners.join(" "), line.score));
        }
        out.push_str(&line.text);
        out.push('\n');
    }
    Ok(out)
}

impl Guest for Ocr {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if !matches!(request.method(), Method::Post) {
            let headers = [TEXT, ("allow", "POST")];
            http_common::respond(out, 405, &headers, b"POST a PNG image to read its text\n");
            return;
        }
        let query = http_common::path(&request)
            .split_once('?')
            .map(|(_, q)| q.to_string())
            .unwrap_or_default();
        let boxes = query.split('&').any(|p| p == "boxes");
        let mut body = Vec::new();
        http_common::for_each_chunk(request, |chunk| body.extend_from_slice(chunk));
        match read(&body, boxes) {
            Ok(text) => http_common::respond(out, 200, &[TEXT], text.as_bytes()),
            Err(Failure(status, why)) => {
                eprintln!("ocr: {why}");
                http_common::respond(out, status, &[TEXT], format!("{why}\n").as_bytes());
            }
        }
    }
}

http_common::wasip2::http::proxy::export!(Ocr with_types_in http_common::wasip2);
