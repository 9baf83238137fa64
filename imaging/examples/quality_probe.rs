//! Encodes one photograph, fitted to a width, at a grid of each encoder's own qualities, for
//! `scripts/bench-image-quality.sh` to measure by DSSIM: writes `reference.png` (the fitted
//! image, lossless) and `<format>-<encoder quality>.<ext>` into a folder, and prints
//! `<format> <encoder quality> <bytes> <file>` per output. With `--mapped`, it encodes at the
//! given request qualities through the mapping the edge applies instead.
//!
//! `cargo run --release -p imaging --example quality_probe -- PHOTO WIDTH OUT_DIR [--mapped] FORMAT:Q,Q,… …`

use std::path::Path;

use image::DynamicImage;
use imaging::{encode_at, transform, Limits};
use shared::image::{ImageFormat, ImageRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [photo, width, out, rest @ ..] = args.as_slice() else {
        return Err("usage: quality_probe PHOTO WIDTH OUT_DIR [--mapped] FORMAT:Q,Q,… …".into());
    };
    let (mapped, grids) = match rest {
        [flag, grids @ ..] if flag == "--mapped" => (true, grids),
        grids => (false, grids),
    };
    let out = Path::new(out);
    std::fs::create_dir_all(out)?;
    let source = std::fs::read(photo)?;
    let limits = Limits::default();
    let path = format!("/cdn-cgi/image/width={width},format=png/images/source");
    let request = ImageRequest::parse(&path)?;
    let reference = transform(&source, &request, ImageFormat::Png, &limits)?;
    std::fs::write(out.join("reference.png"), &reference.bytes)?;
    let fitted = image::load_from_memory(&reference.bytes)?;
    for grid in grids {
        let (format, qualities) = grid.split_once(':').ok_or("FORMAT:Q,Q,…")?;
        let format = parse_format(format)?;
        for quality in qualities.split(',') {
            let quality: u8 = quality.parse()?;
            let encoder_quality = if mapped {
                let bits = imaging::jpeg_bits_per_pixel(&fitted, quality)?;
                imaging::quality::for_encoder(format, quality, bits)
            } else {
                quality
            };
            probe(&fitted, format, quality, encoder_quality, out)?;
        }
    }
    Ok(())
}

fn probe(
    fitted: &DynamicImage,
    format: ImageFormat,
    quality: u8,
    encoder_quality: u8,
    out: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = encode_at(fitted, format, encoder_quality)?;
    let ext = format.as_str();
    let file = out.join(format!("{ext}-{quality}.{ext}"));
    std::fs::write(&file, &bytes)?;
    println!("{ext} {quality} {} {}", bytes.len(), file.display());
    Ok(())
}

fn parse_format(name: &str) -> Result<ImageFormat, String> {
    match name {
        "jpeg" | "jpg" => Ok(ImageFormat::Jpeg),
        "webp" => Ok(ImageFormat::Webp),
        "avif" => Ok(ImageFormat::Avif),
        other => Err(format!("unknown format {other}")),
    }
}
