//! Image references and policy globs. A reference that parses must print as a reference that
//! parses back to itself (normalisation is idempotent), and matching must terminate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::image::ImageRef;
use signet::policy::ImageGlob;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // "glob\nimage": the first line is a glob, the rest an image.
    let (glob, image) = text.split_once('\n').unwrap_or((text, text));
    if let Ok(parsed) = image.parse::<ImageRef>() {
        let printed = parsed.to_string();
        let again: ImageRef = printed
            .parse()
            .unwrap_or_else(|e| panic!("{printed:?} (from {image:?}) does not parse: {e}"));
        assert_eq!(again, parsed, "normalising {image:?} twice changed it");
        if let Ok(g) = ImageGlob::parse(glob) {
            let _ = g.matches(&parsed);
        }
    }
});
