//! nn-vad: finds the speech in a 16 kHz mono 16-bit WAV file with Silero
//! VAD, run by the host through wasi-nn, and prints one segment per line:
//! `START END` in samples, then the same in seconds.
//!
//!   nn-vad [--model NAME | --model-file MODEL.onnx] [--gpu] [--probs] [--time] FILE.wav
//!
//! --model       the graph name the host granted (default: vad)
//! --model-file  load the model from this file instead (the host accepts
//!               only the bytes of a model it granted)
//! --gpu         run on the GPU; needs --model-file, as only a graph loaded
//!               from bytes carries an execution target
//! --probs  print the speech probability of every 512-sample window
//!          (`INDEX PROBABILITY`) instead of the segments
//! --time   print the number of inferences and the mean time of one on
//!          stderr (as the guest sees it: wasi-nn calls and tensors in and
//!          out included)
//!
//! The model runs as silero-vad 6.2.3's `OnnxWrapper` runs it: windows of
//! 512 samples, each preceded by the last 64 samples of the previous one,
//! with the recurrent state carried over; the segments follow its
//! `get_speech_timestamps` with the default settings.

use std::io::Write;

use nn_common::{fail, read_file, Input, Model, Source};

const PROGRAM: &str = "nn-vad";
const USAGE: &str =
    "usage: nn-vad [--model NAME | --model-file MODEL.onnx] [--gpu] [--probs] [--time] FILE.wav";

const SAMPLE_RATE: usize = 16000;
const WINDOW: usize = 512;
const CONTEXT: usize = 64;
const STATE_LEN: usize = 2 * 128;

// get_speech_timestamps defaults (silero-vad 6.2.3).
const THRESHOLD: f64 = 0.5;
const MIN_SPEECH_DURATION_MS: f64 = 250.0;
const MIN_SILENCE_DURATION_MS: f64 = 100.0;
const SPEECH_PAD_MS: f64 = 30.0;

/// Reads the samples of a 16 kHz mono 16-bit PCM WAV file as floats in
/// [-1, 1).
fn read_wav(bytes: &[u8], path: &str) -> Result<Vec<f32>, String> {
    let bad = |why: &str| format!("{path}: {why}");
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("not a WAV file (no RIFF/WAVE header)"));
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut pos = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(bytes, pos + 4) as usize;
        let body = pos + 8;
        let end = body.saturating_add(size).min(bytes.len());
        match id {
            b"fmt " => {
                if end - body < 16 {
                    return Err(bad("truncated fmt chunk"));
                }
                let b = &bytes[body..end];
                let mut tag = u16_at(b, 0);
                // WAVE_FORMAT_EXTENSIBLE: the real format is in the sub-format GUID.
                if tag == 0xFFFE && b.len() >= 26 {
                    tag = u16_at(b, 24);
                }
                format = Some((tag, u16_at(b, 2), u32_at(b, 4), u16_at(b, 14)));
            }
            b"data" => {
                let (tag, channels, rate, bits) =
                    format.ok_or_else(|| bad("data chunk before the fmt chunk"))?;
                if tag != 1 {
                    return Err(bad(&format!(
                        "audio format {tag}, expected 16-bit PCM (format 1)"
                    )));
                }
                if channels != 1 {
                    return Err(bad(&format!("{channels} channels, expected mono")));
                }
                if rate as usize != SAMPLE_RATE {
                    return Err(bad(&format!("{rate} Hz, expected {SAMPLE_RATE} Hz")));
                }
                if bits != 16 {
                    return Err(bad(&format!("{bits}-bit samples, expected 16-bit")));
                }
                let data = &bytes[body..end];
                return Ok(data
                    .as_chunks::<2>()
                    .0
                    .iter()
                    .map(|c| i16::from_le_bytes(*c) as f32 / 32768.0)
                    .collect());
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        pos = body.saturating_add(size).saturating_add(size & 1);
    }
    Err(bad(if format.is_none() {
        "no fmt chunk"
    } else {
        "no data chunk"
    }))
}

/// Speech probability of each 512-sample window (the last one padded with
/// zeros), as `OnnxWrapper.__call__` computes them one after another.
fn speech_probs(model: &Model, audio: &[f32]) -> Result<Vec<f32>, String> {
    let mut state = vec![0f32; STATE_LEN];
    let mut x = vec![0f32; CONTEXT + WINDOW];
    let sr = [SAMPLE_RATE as i64];
    let mut probs = Vec::with_capacity(audio.len().div_ceil(WINDOW));
    for start in (0..audio.len()).step_by(WINDOW) {
        // The previous window's last 64 samples (zeros at first), then
        // this window.
        x.copy_within(WINDOW.., 0);
        let chunk = &audio[start..(start + WINDOW).min(audio.len())];
        x[CONTEXT..CONTEXT + chunk.len()].copy_from_slice(chunk);
        x[CONTEXT + chunk.len()..].fill(0.0);
        let inputs = [
            Input::f32("input", &[1, CONTEXT + WINDOW], &x),
            Input::f32("state", &[2, 1, 128], &state),
            Input::i64("sr", &[], &sr),
        ];
        let out = model.run_f32(&inputs, &[1, STATE_LEN]).map_err(|e| e.0)?;
        if out[0].len() != 1 || out[1].len() != STATE_LEN {
            return Err(format!(
                "graph {} returned {} and {} values, expected 1 and {STATE_LEN}: is it Silero VAD?",
                model.name(),
                out[0].len(),
                out[1].len()
            ));
        }
        probs.push(out[0][0]);
        state.copy_from_slice(&out[1]);
    }
    Ok(probs)
}

/// `get_speech_timestamps_from_probs` with its defaults (no maximum speech
/// duration, so no forced cuts): speech starts at a window whose
/// probability is at least 0.5 and ends once it has stayed below 0.35 for
/// 100 ms; segments of 250 ms or less are dropped; each is padded by 30 ms
/// (or by half the gap to its neighbour when that is shorter than 60 ms).
fn speech_segments(probs: &[f32], audio_len: usize) -> Vec<(i64, i64)> {
    let sr = SAMPLE_RATE as f64;
    let min_speech_samples = sr * MIN_SPEECH_DURATION_MS / 1000.0;
    let speech_pad_samples = sr * SPEECH_PAD_MS / 1000.0;
    let min_silence_samples = sr * MIN_SILENCE_DURATION_MS / 1000.0;
    let neg_threshold = (THRESHOLD - 0.15).max(0.01);

    let mut speeches: Vec<(i64, i64)> = Vec::new();
    // The start of the segment in progress, if any.
    let mut current: Option<i64> = None;
    // Where the silence that may end it began (0: none).
    let mut temp_end: i64 = 0;
    for (i, &p) in probs.iter().enumerate() {
        // The model's float32 output, compared as a Python float.
        let p = p as f64;
        let cur_sample = (WINDOW * i) as i64;
        if p >= THRESHOLD && temp_end != 0 {
            temp_end = 0;
        }
        let Some(start) = current else {
            if p >= THRESHOLD {
                current = Some(cur_sample);
            }
            continue;
        };
        if p < neg_threshold {
            if temp_end == 0 {
                temp_end = cur_sample;
            }
            if ((cur_sample - temp_end) as f64) < min_silence_samples {
                continue;
            }
            if (temp_end - start) as f64 > min_speech_samples {
                speeches.push((start, temp_end));
            }
            current = None;
            temp_end = 0;
        }
    }
    if let Some(start) = current {
        if (audio_len as i64 - start) as f64 > min_speech_samples {
            speeches.push((start, audio_len as i64));
        }
    }

    // Padding (Python's int() truncates; the values are never negative).
    let len = audio_len as f64;
    let n = speeches.len();
    for i in 0..n {
        if i == 0 {
            speeches[i].0 = (speeches[i].0 as f64 - speech_pad_samples).max(0.0) as i64;
        }
        if i + 1 < n {
            let silence = speeches[i + 1].0 - speeches[i].1;
            if (silence as f64) < 2.0 * speech_pad_samples {
                speeches[i].1 += silence.div_euclid(2);
                speeches[i + 1].0 = (speeches[i + 1].0 - silence.div_euclid(2)).max(0);
            } else {
                speeches[i].1 = len.min(speeches[i].1 as f64 + speech_pad_samples) as i64;
                speeches[i + 1].0 = (speeches[i + 1].0 as f64 - speech_pad_samples).max(0.0) as i64;
            }
        } else {
            speeches[i].1 = len.min(speeches[i].1 as f64 + speech_pad_samples) as i64;
        }
    }
    speeches
}

fn main() {
    let mut source = Source::Name("vad".to_string());
    let mut print_probs = false;
    let mut gpu = false;
    let mut time = false;
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--model" | "--model-file" => {
                let v = args
                    .next()
                    .unwrap_or_else(|| fail(PROGRAM, 2, format!("{a} needs a value\n{USAGE}")));
                source = if a == "--model" {
                    Source::Name(v)
                } else {
                    Source::File(v)
                };
            }
            "--probs" => print_probs = true,
            "--gpu" => gpu = true,
            "--time" => time = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            s if s.starts_with('-') && s.len() > 1 => {
                fail(PROGRAM, 2, format!("unknown option {s}\n{USAGE}"))
            }
            _ if file.is_none() => file = Some(a),
            _ => fail(PROGRAM, 2, format!("more than one file given\n{USAGE}")),
        }
    }
    let path = file.unwrap_or_else(|| fail(PROGRAM, 2, USAGE));
    if gpu && matches!(source, Source::Name(_)) {
        fail(PROGRAM, 2, "--gpu needs --model-file: a graph loaded by name carries no execution target in the wasi_ephemeral_nn ABI");
    }
    let bytes = read_file(&path).unwrap_or_else(|e| fail(PROGRAM, 1, e));
    let audio = read_wav(&bytes, &path).unwrap_or_else(|e| fail(PROGRAM, 1, e));
    let model = Model::open(&source, gpu).unwrap_or_else(|e| fail(PROGRAM, 1, e));
    let started = std::time::Instant::now();
    let probs = speech_probs(&model, &audio).unwrap_or_else(|e| fail(PROGRAM, 1, e));
    if time {
        let each = started.elapsed().as_secs_f64() / probs.len().max(1) as f64;
        eprintln!(
            "{PROGRAM}: {} inferences, {:.1} µs each",
            probs.len(),
            each * 1e6
        );
    }

    let mut out = std::io::stdout().lock();
    if print_probs {
        for (i, p) in probs.iter().enumerate() {
            let _ = writeln!(out, "{i} {p:.6}");
        }
    } else {
        let segments = speech_segments(&probs, audio.len());
        if segments.is_empty() {
            eprintln!("{PROGRAM}: no speech found in {path}");
        }
        for (start, end) in segments {
            let _ = writeln!(
                out,
                "{start} {end} {:.3} {:.3}",
                start as f64 / SAMPLE_RATE as f64,
                end as f64 / SAMPLE_RATE as f64
            );
        }
    }
    let _ = out.flush();
}
