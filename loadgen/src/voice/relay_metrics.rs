//! The relays' own audio counters (`GET /metrics`), read before and after
//! the run: what the relays say they forwarded and dropped (a listener's
//! full audio lane) tells a loss on the relay from one in the generator.

use crate::client::{Api, Targets};
use serde::Serialize;

/// The counters read, summed over the relays.
const COUNTERS: [&str; 4] = [
    "ferrochat_audio_frames_in_total",
    "ferrochat_audio_frames_out_total",
    "ferrochat_audio_frames_dropped_total",
    "ferrochat_audio_frames_refused_total",
];

/// The relays' audio counters over the run (summed over every relay;
/// `None` when one could not be read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayAudio {
    /// Frames accepted from speakers.
    pub frames_in: u64,
    /// Frames queued to listeners.
    pub frames_out: u64,
    /// Frames dropped from a full audio lane (a slow listener).
    pub dropped: u64,
    /// Frames refused (caps, not in the room, …).
    pub refused: u64,
}

/// Every relay's counters now, summed (a relay listed twice in `--url`
/// counted once); `None` when one of them could not be read.
pub async fn read(targets: &Targets) -> Option<[u64; 4]> {
    let mut sum = [0u64; 4];
    let urls = targets.urls();
    for i in 0..targets.len() {
        if urls[..i].contains(&urls[i]) {
            continue;
        }
        let api = Api::new(targets.node(i));
        let r = api
            .request(hyper::Method::GET, "/metrics", None, None)
            .await
            .ok()?;
        if r.status != 200 {
            return None;
        }
        let text = String::from_utf8_lossy(&r.body);
        for (k, name) in COUNTERS.iter().enumerate() {
            sum[k] += sample(&text, name)?;
        }
    }
    Some(sum)
}

/// The change between two readings.
pub fn between(before: Option<[u64; 4]>, after: Option<[u64; 4]>) -> Option<RelayAudio> {
    let (b, a) = (before?, after?);
    let d = |k: usize| a[k].saturating_sub(b[k]);
    Some(RelayAudio {
        frames_in: d(0),
        frames_out: d(1),
        dropped: d(2),
        refused: d(3),
    })
}

/// The value of the unlabelled sample `name` in a Prometheus text page.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse::<f64>().ok())?
        })
        .map(|v| v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_by_exact_name() {
        let page = "# HELP ferrochat_audio_frames_in_total x\n\
                    ferrochat_audio_frames_in_total 12\n\
                    ferrochat_audio_frames_in_total_x 99\n\
                    ferrochat_audio_frames_dropped_total 3e0\n";
        assert_eq!(sample(page, "ferrochat_audio_frames_in_total"), Some(12));
        assert_eq!(
            sample(page, "ferrochat_audio_frames_dropped_total"),
            Some(3)
        );
        assert_eq!(sample(page, "ferrochat_audio_frames_out_total"), None);
        let d = between(Some([1, 2, 3, 4]), Some([11, 22, 3, 5])).unwrap();
        assert_eq!(
            (d.frames_in, d.frames_out, d.dropped, d.refused),
            (10, 20, 0, 1)
        );
        assert_eq!(between(None, Some([0; 4])), None);
    }
}
