//! Loudness for the "who is speaking" indicator. Pure.

/// A level above this counts as speaking (RMS of samples in −1..1; the
/// noise floor of a quiet microphone is well below it).
pub const SPEAKING: f32 = 0.02;

/// Root mean square of `samples` (0 for none).
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f32 = samples.iter().map(|s| s * s).sum();
    (sum / samples.len() as f32).sqrt()
}

/// The indicator's level: rises at once, falls by a quarter per reading,
/// so the bar does not flicker between words.
pub fn smooth(previous: f32, now: f32) -> f32 {
    now.max(previous * 0.75)
}

/// The width (percent) of a level bar: speech RMS rarely passes 0.3.
pub fn percent(level: f32) -> u32 {
    ((level / 0.3).min(1.0) * 100.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_of_silence_and_of_a_square_wave() {
        assert_eq!(rms(&[]), 0.0);
        assert_eq!(rms(&[0.0; 64]), 0.0);
        let square: Vec<f32> = (0..64)
            .map(|i| if i % 2 == 0 { 0.5 } else { -0.5 })
            .collect();
        assert!((rms(&square) - 0.5).abs() < 1e-6);
        assert!(rms(&square) > SPEAKING);
    }

    #[test]
    fn the_indicator_decays_and_saturates() {
        assert_eq!(smooth(0.4, 0.0), 0.3);
        assert_eq!(smooth(0.1, 0.2), 0.2);
        assert_eq!(percent(0.0), 0);
        assert_eq!(percent(0.15), 50);
        assert_eq!(percent(1.0), 100);
    }
}
