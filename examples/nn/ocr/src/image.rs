//! PNG input.

use crate::cv::Mat;

/// Decodes a PNG into a BGR image the way RapidOCR's `LoadImage` turns what
/// Pillow reads into one: grey is copied to the three channels; grey+alpha
/// is composited on white; RGBA becomes BGR with transparent pixels black,
/// then is inverted unless the result is all black, in which case the
/// transparent pixels turn white instead. Palette images are expanded to
/// RGB and 16-bit samples reduced to 8 bits.
pub fn load_png(bytes: &[u8], path: &str) -> Result<Mat, String> {
    let bad = |e: &dyn std::fmt::Display| format!("{path}: not a PNG image that can be read ({e})");
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| bad(&e))?;
    let source = reader.info().color_type;
    let mut buf = vec![
        0;
        reader
            .output_buffer_size()
            .ok_or_else(|| format!("{path}: image too large"))?
    ];
    let frame = reader.next_frame(&mut buf).map_err(|e| bad(&e))?;
    let (w, h) = (frame.width as usize, frame.height as usize);
    if w == 0 || h == 0 {
        return Err(format!("{path}: empty image"));
    }
    let data = &buf[..frame.buffer_size()];
    let channels = frame.color_type.samples();
    // A tRNS chunk makes the decoder add alpha; Pillow keeps such images
    // without it.
    let keep_alpha = matches!(
        source,
        png::ColorType::GrayscaleAlpha | png::ColorType::Rgba
    );
    let mut img = Mat::new(w, h, 3);
    for i in 0..w * h {
        let px = &data[i * channels..(i + 1) * channels];
        let out = &mut img.data[i * 3..i * 3 + 3];
        match (channels, keep_alpha) {
            (1, _) | (2, false) => out.fill(px[0]),
            (2, true) => {
                let (g, a) = (px[0], px[1]);
                let v = if a != 0 { g } else { 0 };
                out.fill(v.saturating_add(255 - a));
            }
            (3, _) | (4, false) => out.copy_from_slice(&[px[2], px[1], px[0]]),
            (4, true) => {
                let a = px[3];
                out.copy_from_slice(&if a != 0 {
                    [px[2], px[1], px[0]]
                } else {
                    [0, 0, 0]
                });
            }
            _ => return Err(format!("{path}: unsupported PNG colour type")),
        }
    }
    if channels == 4 && keep_alpha {
        let any_colour = img.data.iter().any(|&v| v != 0);
        for i in 0..w * h {
            let a = data[i * 4 + 3];
            for v in img.data[i * 3..i * 3 + 3].iter_mut() {
                *v = if any_colour {
                    !*v
                } else {
                    v.saturating_add(255 - a)
                };
            }
        }
    }
    Ok(img)
}
