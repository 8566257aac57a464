//! Time-based one-time passwords (RFC 6238) for the admin log-in, as EmailEngine configures
//! them: HMAC-SHA1 over the seed's ASCII bytes, 30-second steps, 6 digits, codes accepted up to
//! six steps either side of now. Also the seed itself, the `otpauth://` URI an authenticator
//! app reads, and that URI as an SVG QR code. Pure; time passed in.

use qrcodegen::{QrCode, QrCodeEcc};
use totp_rs::{Algorithm, Builder, Totp};

pub const STEP_SECS: u64 = 30;
pub const DIGITS: u8 = 6;
/// Steps accepted either side of the current one (EmailEngine's `TOTP_WINDOW_SIZE`).
pub const WINDOW: u16 = 6;
const SEED_LEN: usize = 20;
const SEED_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A new seed: 20 characters from `[a-zA-Z0-9]`, as EmailEngine makes them.
pub fn new_seed() -> String {
    let mut out = String::with_capacity(SEED_LEN);
    while out.len() < SEED_LEN {
        let mut b = [0u8; 1];
        rand::fill(&mut b);
        // 248 = 4 × 62: rejecting the rest keeps every character equally likely.
        if b[0] < 248 {
            out.push(SEED_ALPHABET[(b[0] % 62) as usize] as char);
        }
    }
    out
}

fn totp(secret: &[u8], digits: u8) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(digits)
        .with_skew(WINDOW)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.to_vec())
        .build()
        .ok()
}

/// The code for a seed at a time (seconds since the epoch); `None` for a seed too short for
/// RFC 4226 (under 16 bytes).
pub fn code_at(seed: &str, unix_secs: u64) -> Option<String> {
    Some(
        totp(seed.as_bytes(), DIGITS)?
            .generate(unix_secs)
            .to_string(),
    )
}

/// The step a presented code belongs to, if it is valid at `unix_secs` within the window.
pub fn matching_step(seed: &str, code: &str, unix_secs: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(seed.as_bytes(), DIGITS)?.check(code, unix_secs)
}

/// Refuses a code once it has been accepted: only steps later than the last accepted one pass
/// (RFC 6238 §5.2).
#[derive(Debug, Default)]
pub struct ReplayGuard {
    last_step: Option<u64>,
}

impl ReplayGuard {
    /// Whether the step is new; if so, it becomes the last accepted one.
    pub fn accept(&mut self, step: u64) -> bool {
        if self.last_step.is_some_and(|last| step <= last) {
            return false;
        }
        self.last_step = Some(step);
        true
    }
}

/// RFC 4648 base32 of the seed's bytes, without padding, as authenticator apps take it.
pub fn base32_secret(seed: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in seed.as_bytes() {
        buffer = (buffer << 8) | byte as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// `otpauth://totp/<label>?secret=…&issuer=EmailEngine`, the label being the service host.
pub fn otpauth_uri(label: &str, seed: &str) -> String {
    let label = percent_encoding::utf8_percent_encode(label, percent_encoding::NON_ALPHANUMERIC);
    format!(
        "otpauth://totp/{label}?secret={}&issuer=EmailEngine&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        base32_secret(seed)
    )
}

/// The text as a QR code drawn in SVG (one path, dark modules on a white quiet zone).
pub fn qr_svg(text: &str) -> Option<String> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let size = qr.size();
    let border = 4;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    let full = size + border * 2;
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {full} {full}\" width=\"200\" height=\"200\" role=\"img\" aria-label=\"QR code for the authenticator app\" shape-rendering=\"crispEdges\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (8 digits, key "12345678901234567890").
    #[test]
    fn rfc6238_vectors() {
        let t = totp(b"12345678901234567890", 8).unwrap();
        for (time, code) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(t.generate(time).to_string(), code, "T = {time}");
        }
    }

    #[test]
    fn six_digit_codes_and_the_window() {
        let seed = "12345678901234567890";
        // The 6-digit code is the last six digits of the 8-digit one.
        assert_eq!(code_at(seed, 59).as_deref(), Some("287082"));
        assert_eq!(code_at(seed, 1_111_111_109).as_deref(), Some("081804"));
        let now = 1_111_111_109;
        let code = code_at(seed, now).unwrap();
        assert_eq!(matching_step(seed, &code, now), Some(now / 30));
        assert_eq!(matching_step(seed, &code, now + 6 * 30), Some(now / 30));
        assert_eq!(matching_step(seed, &code, now - 6 * 30), Some(now / 30));
        assert_eq!(matching_step(seed, &code, now + 7 * 30), None);
        assert_eq!(matching_step(seed, "12345", now), None);
        assert_eq!(matching_step(seed, "abcdef", now), None);
        assert_eq!(
            code_at("short", now),
            None,
            "seeds under 128 bits are refused"
        );
    }

    #[test]
    fn replayed_steps_are_refused() {
        let mut g = ReplayGuard::default();
        assert!(g.accept(100));
        assert!(!g.accept(100));
        assert!(!g.accept(99));
        assert!(g.accept(101));
    }

    #[test]
    fn seeds() {
        let s = new_seed();
        assert_eq!(s.len(), 20);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, new_seed());
    }

    #[test]
    fn base32_golden() {
        // RFC 4648 §10 test vectors, padding removed.
        assert_eq!(base32_secret("foobar"), "MZXW6YTBOI");
        assert_eq!(base32_secret("f"), "MY");
        assert_eq!(
            base32_secret("12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn uri_and_qr() {
        assert_eq!(
            otpauth_uri("mail.example.com", "foobar"),
            "otpauth://totp/mail%2Eexample%2Ecom?secret=MZXW6YTBOI&issuer=EmailEngine&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg("otpauth://totp/x?secret=MZXW6YTBOI").unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 37 37\""));
    }
}
