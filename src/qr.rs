//! The device engagement as a QR code (ISO/IEC 18013-5 §8.2.2.3: the
//! `mdoc:` URI in a QR code the reader scans): drawn in the terminal with
//! Unicode half blocks, or written as a PNG for a kiosk screen.
//!
//! The `qrcode` crate does the encoding; the PNG is drawn here from its
//! module matrix with the `png` crate the workspace already uses, rather
//! than pulling the `image` crate in for one picture.

use anyhow::Context as _;
use qrcode::{Color, EcLevel, QrCode};

/// Modules of white border on each side (the quiet zone the QR standard asks).
const QUIET: usize = 4;
/// Pixels per module in the PNG.
const SCALE: usize = 8;

fn encode(text: &str) -> anyhow::Result<QrCode> {
    // Level M: the URI is short, and phone screens get scratched.
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .context("the engagement does not fit a QR code")
}

/// The QR code as text: two modules per character cell (upper and lower
/// half blocks), dark modules drawn dark on a light terminal background
/// inverted, so it scans on dark and light terminals alike.
pub fn terminal(text: &str) -> anyhow::Result<String> {
    let code = encode(text)?;
    let w = code.width();
    let colors = code.to_colors();
    let size = w + 2 * QUIET;
    // Light is drawn as ink (a full block), dark as blank: terminals are
    // usually dark, and scanners need dark modules on a light field.
    let dark = |x: usize, y: usize| -> bool {
        if x < QUIET || y < QUIET || x >= QUIET + w || y >= QUIET + w {
            return false;
        }
        colors[(y - QUIET) * w + (x - QUIET)] == Color::Dark
    };
    let mut out = String::with_capacity(size * (size / 2 + 1) * 3);
    for row in (0..size).step_by(2) {
        for x in 0..size {
            let top = !dark(x, row);
            let bottom = row + 1 < size && !dark(x, row + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

/// The QR code as a greyscale PNG (dark modules black, quiet zone white).
pub fn png(text: &str) -> anyhow::Result<Vec<u8>> {
    let code = encode(text)?;
    let w = code.width();
    let colors = code.to_colors();
    let side = (w + 2 * QUIET) * SCALE;
    let mut pixels = vec![0xFFu8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c != Color::Dark {
            continue;
        }
        let (mx, my) = (i % w + QUIET, i / w + QUIET);
        for y in my * SCALE..(my + 1) * SCALE {
            pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
        }
    }
    let side32 = u32::try_from(side).context("QR code too large")?;
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, side32, side32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().context("png header")?;
        writer.write_image_data(&pixels).context("png data")?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_code_is_square_with_a_quiet_zone() {
        let t = terminal("mdoc:owBjMS4wAYIB2BhYS6QBAiABIVgg").unwrap();
        let lines: Vec<&str> = t.lines().collect();
        let width = lines[0].chars().count();
        assert!(width >= 21 + 2 * QUIET, "{width}");
        assert!(lines.iter().all(|l| l.chars().count() == width));
        assert_eq!(lines.len(), width.div_ceil(2));
        // The quiet zone is drawn light (ink): the first row is all blocks.
        assert!(lines[0].chars().all(|c| c == '█'), "{}", lines[0]);
        // And the code itself has dark modules.
        assert!(lines[QUIET / 2 + 1].contains(' ') || lines[QUIET / 2 + 1].contains('▀'));
    }

    #[test]
    fn png_decodes_to_the_expected_size() {
        let bytes = png("mdoc:owBjMS4wAYIB2BhYS6QBAiABIVgg").unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert_eq!(info.width as usize % SCALE, 0);
        assert!(info.width as usize >= (21 + 2 * QUIET) * SCALE);
    }
}
