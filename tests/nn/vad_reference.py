#!/usr/bin/env python3
"""Finds the speech in a 16 kHz mono 16-bit WAV natively, with Silero VAD on
ONNX Runtime: the reference the nn-vad guest is compared with. Same model,
same output:

  one segment per line: `START END` in samples, then in seconds
  with --probs: the speech probability of each 512-sample window,
  `INDEX PROBABILITY` (with six decimals; --probs-npy writes them as float32)

The model runs as silero-vad 6.2.3's OnnxWrapper runs it (each 512-sample
window preceded by the previous window's last 64 samples, the state carried
over, one thread) and the segments come from its get_speech_timestamps with
the defaults. That package needs torch, so the two are written out here with
numpy.

  with --time: the number of inferences and the mean time of one, on stderr
  with --threads N: ONNX Runtime's intra-op threads (default 1, as
  silero-vad's wrapper sets; 0 is ONNX Runtime's default)

usage: vad_reference.py --model silero_vad.onnx [--probs] [--probs-npy FILE] [--time] [--threads N] FILE.wav
"""

import argparse
import sys
import time
import wave

import numpy as np
import onnxruntime

RATE = 16000
WINDOW = 512
CONTEXT = 64


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getcomptype() != "NONE" or w.getsampwidth() != 2:
            raise SystemExit(f"{path}: expected 16-bit PCM")
        if w.getnchannels() != 1:
            raise SystemExit(f"{path}: {w.getnchannels()} channels, expected mono")
        if w.getframerate() != RATE:
            raise SystemExit(f"{path}: {w.getframerate()} Hz, expected {RATE} Hz")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def speech_probs(model, audio, threads=1):
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = threads
    opts.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"], sess_options=opts)
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, CONTEXT), dtype=np.float32)
    sr = np.array(RATE, dtype=np.int64)
    probs = []
    started = time.perf_counter()
    for start in range(0, len(audio), WINDOW):
        chunk = audio[start : start + WINDOW]
        if len(chunk) < WINDOW:
            chunk = np.pad(chunk, (0, WINDOW - len(chunk)))
        x = np.concatenate([context, chunk[np.newaxis, :]], axis=1)
        out, state = session.run(None, {"input": x, "state": state, "sr": sr})
        context = x[:, -CONTEXT:]
        probs.append(float(out[0][0]))
    return probs, time.perf_counter() - started


def speech_timestamps(
    speech_probs,
    audio_length_samples,
    threshold=0.5,
    min_speech_duration_ms=250,
    max_speech_duration_s=float("inf"),
    min_silence_duration_ms=100,
    speech_pad_ms=30,
    min_silence_at_max_speech=98,
    use_max_poss_sil_at_max_speech=True,
):
    """silero-vad 6.2.3's get_speech_timestamps_from_probs at 16 kHz."""
    sampling_rate = RATE
    window_size_samples = WINDOW
    min_speech_samples = sampling_rate * min_speech_duration_ms / 1000
    speech_pad_samples = sampling_rate * speech_pad_ms / 1000
    max_speech_samples = sampling_rate * max_speech_duration_s - window_size_samples - 2 * speech_pad_samples
    min_silence_samples = sampling_rate * min_silence_duration_ms / 1000
    min_silence_samples_at_max_speech = sampling_rate * min_silence_at_max_speech / 1000
    neg_threshold = max(threshold - 0.15, 0.01)

    triggered = False
    speeches = []
    current = {}
    temp_end = 0
    prev_end = next_start = 0
    possible_ends = []

    for i, p in enumerate(speech_probs):
        cur_sample = window_size_samples * i
        if p >= threshold and temp_end:
            sil_dur = cur_sample - temp_end
            if sil_dur > min_silence_samples_at_max_speech:
                possible_ends.append((temp_end, sil_dur))
            temp_end = 0
            if next_start < prev_end:
                next_start = cur_sample
        if p >= threshold and not triggered:
            triggered = True
            current["start"] = cur_sample
            continue
        if triggered and cur_sample - current["start"] > max_speech_samples:
            if use_max_poss_sil_at_max_speech and possible_ends:
                prev_end, dur = max(possible_ends, key=lambda x: x[1])
                current["end"] = prev_end
                speeches.append(current)
                current = {}
                next_start = prev_end + dur
                if next_start < prev_end + cur_sample:
                    current["start"] = next_start
                else:
                    triggered = False
                prev_end = next_start = temp_end = 0
                possible_ends = []
            elif prev_end:
                current["end"] = prev_end
                speeches.append(current)
                current = {}
                if next_start < prev_end:
                    triggered = False
                else:
                    current["start"] = next_start
                prev_end = next_start = temp_end = 0
                possible_ends = []
            else:
                current["end"] = cur_sample
                speeches.append(current)
                current = {}
                prev_end = next_start = temp_end = 0
                triggered = False
                possible_ends = []
                continue
        if p < neg_threshold and triggered:
            if not temp_end:
                temp_end = cur_sample
            sil_dur_now = cur_sample - temp_end
            if not use_max_poss_sil_at_max_speech and sil_dur_now > min_silence_samples_at_max_speech:
                prev_end = temp_end
            if sil_dur_now < min_silence_samples:
                continue
            current["end"] = temp_end
            if current["end"] - current["start"] > min_speech_samples:
                speeches.append(current)
            current = {}
            prev_end = next_start = temp_end = 0
            triggered = False
            possible_ends = []
            continue

    if current and audio_length_samples - current["start"] > min_speech_samples:
        current["end"] = audio_length_samples
        speeches.append(current)

    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - speech_pad_samples))
        if i != len(speeches) - 1:
            silence_duration = speeches[i + 1]["start"] - speech["end"]
            if silence_duration < 2 * speech_pad_samples:
                speech["end"] += int(silence_duration // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - silence_duration // 2))
            else:
                speech["end"] = int(min(audio_length_samples, speech["end"] + speech_pad_samples))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - speech_pad_samples))
        else:
            speech["end"] = int(min(audio_length_samples, speech["end"] + speech_pad_samples))
    return [(s["start"], s["end"]) for s in speeches]


def main():
    p = argparse.ArgumentParser(description="Silero VAD on ONNX Runtime, the nn-vad guest's output format")
    p.add_argument("--model", required=True, help="silero_vad.onnx")
    p.add_argument("--probs", action="store_true", help="print the per-window speech probabilities")
    p.add_argument("--probs-npy", metavar="FILE", help="also save the probabilities (float32) to FILE")
    p.add_argument("--time", action="store_true", help="print the mean time of one inference on stderr")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime's intra-op threads (0: its default)")
    p.add_argument("wav")
    args = p.parse_args()

    audio = read_wav(args.wav)
    probs, took = speech_probs(args.model, audio, args.threads)
    if args.time:
        print(f"vad_reference: {len(probs)} inferences, {took / max(len(probs), 1) * 1e6:.1f} µs each", file=sys.stderr)
    if args.probs_npy:
        np.save(args.probs_npy, np.array(probs, dtype=np.float32))
    out = sys.stdout
    if args.probs:
        for i, prob in enumerate(probs):
            out.write(f"{i} {prob:.6f}\n")
        return
    segments = speech_timestamps(probs, len(audio))
    if not segments:
        print(f"vad_reference: no speech found in {args.wav}", file=sys.stderr)
    for start, end in segments:
        out.write(f"{start} {end} {start / RATE:.3f} {end / RATE:.3f}\n")


if __name__ == "__main__":
    main()
