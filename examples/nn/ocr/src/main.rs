//! nn-ocr: reads the text in a PNG image with PP-OCRv4 (text detection and
//! recognition), run by the host through wasi-nn, and prints one line per
//! text box in reading order. The pre- and post-processing follow RapidOCR
//! 1.4.4 (without its angle classifier), so the output matches
//! `tests/nn/ocr_reference.py`.
//!
//!   nn-ocr [--det NAME | --det-file F] [--rec NAME | --rec-file F] [--keys FILE]
//!          [--boxes] [--gpu] IMAGE.png
//!
//! --det, --rec  the graph names the host granted (default: det, rec)
//! --det-file, --rec-file
//!               load a model from this file instead (the host accepts only
//!               the bytes of a model it granted)
//! --gpu         run on the GPU; needs the -file options, as only a graph
//!               loaded from bytes carries an execution target
//! --keys        the recogniser's dictionary, one entry per line (the
//!               models script writes it next to the models)
//! --boxes       also print each box's corners and score:
//!               `x,y x,y x,y x,y<TAB>score<TAB>text`

use std::io::Write;

use nn_common::{fail, read_file, Model, Source};
use nn_ocr::{image, ocr, WasiNets};

const PROGRAM: &str = "nn-ocr";
const USAGE: &str =
    "usage: nn-ocr [--det NAME | --det-file F] [--rec NAME | --rec-file F] [--keys FILE] [--boxes] [--gpu] IMAGE.png";

struct Args {
    det: Source,
    rec: Source,
    keys: String,
    boxes: bool,
    gpu: bool,
    image: String,
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let (mut det, mut rec) = (Source::Name("det".into()), Source::Name("rec".into()));
    let (mut keys, mut image) = (None, None);
    let (mut boxes, mut gpu) = (false, false);
    while let Some(a) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .unwrap_or_else(|| fail(PROGRAM, 2, format!("{flag} needs a value\n{USAGE}")))
        };
        match a.as_str() {
            "--det" => det = Source::Name(value("--det")),
            "--rec" => rec = Source::Name(value("--rec")),
            "--det-file" => det = Source::File(value("--det-file")),
            "--rec-file" => rec = Source::File(value("--rec-file")),
            "--keys" => keys = Some(value("--keys")),
            "--boxes" => boxes = true,
            "--gpu" => gpu = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s if s.starts_with('-') && s.len() > 1 => {
                fail(PROGRAM, 2, format!("unknown option {s}\n{USAGE}"))
            }
            _ if image.is_none() => image = Some(a),
            _ => fail(PROGRAM, 2, format!("more than one image given\n{USAGE}")),
        }
    }
    let image = image.unwrap_or_else(|| fail(PROGRAM, 2, USAGE));
    let keys = keys.unwrap_or_else(|| {
        fail(
            PROGRAM,
            2,
            "no dictionary: pass --keys FILE (the recogniser's characters, one per line; scripts/models.sh writes ppocr_keys.txt)",
        )
    });
    if gpu && (matches!(det, Source::Name(_)) || matches!(rec, Source::Name(_))) {
        fail(
            PROGRAM,
            2,
            "--gpu needs --det-file and --rec-file: a graph loaded by name carries no execution target in the wasi_ephemeral_nn ABI",
        );
    }
    Args {
        det,
        rec,
        keys,
        boxes,
        gpu,
        image,
    }
}

fn main() {
    let args = parse_args();
    let bytes = read_file(&args.image).unwrap_or_else(|e| fail(PROGRAM, 1, e));
    let img = image::load_png(&bytes, &args.image).unwrap_or_else(|e| fail(PROGRAM, 1, e));
    let keys_path = &args.keys;
    let keys = read_file(keys_path)
        .map_err(|e| e.0)
        .and_then(|b| ocr::parse_keys(&b))
        .unwrap_or_else(|e| fail(PROGRAM, 1, e));
    if keys.is_empty() {
        fail(PROGRAM, 1, format!("{keys_path}: empty dictionary"));
    }
    let charset = ocr::charset(&keys);
    let det = Model::open(&args.det, args.gpu).unwrap_or_else(|e| fail(PROGRAM, 1, e));
    let rec = Model::open(&args.rec, args.gpu).unwrap_or_else(|e| fail(PROGRAM, 1, e));
    let mut nets = WasiNets { det, rec };
    let lines = ocr::run(img, &mut nets, &charset).unwrap_or_else(|e| fail(PROGRAM, 1, e));

    let mut out = std::io::stdout().lock();
    for line in &lines {
        if args.boxes {
            let corners: Vec<String> = line
                .points
                .iter()
                .map(|p| format!("{},{}", p[0], p[1]))
                .collect();
            let _ = writeln!(
                out,
                "{}\t{:.5}\t{}",
                corners.join(" "),
                line.score,
                line.text
            );
        } else {
            let _ = writeln!(out, "{}", line.text);
        }
    }
    let _ = out.flush();
    if lines.is_empty() {
        eprintln!("{PROGRAM}: no text found in {}", args.image);
    }
}
