//! Offline flicker measurement: feed `(source, stylised, pts)` one frame at a time; the evaluator keeps
//! only the last `k` frames, scores every pair `(t, t + k)` on both videos (the source video is the floor:
//! what the flow's own error costs), and writes CSV, JSON and a PNG plot. Every convention that changes
//! the numbers (flow, preset, interval, range, masks, denominators) is written next to them.
use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use super::flow::{FlowEstimator, FlowMethod};
use super::metrics::{pair_metrics, PairGeometry, PairMetrics};
use super::{Image, Result, TemporalError};

/// What to measure with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasureConfig {
    pub flow: FlowMethod,
    /// Frame interval `k`: 1 for short-term consistency, 10 is the usual long-term interval.
    pub interval: usize,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        Self { flow: FlowMethod::default(), interval: 1 }
    }
}

/// The choices behind the numbers, written into the CSV header and the JSON summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conventions {
    pub flow: FlowMethod,
    pub interval: usize,
}

impl Conventions {
    /// `(key, value)` in the order they are written; the single source for both the CSV and the JSON.
    pub fn entries(&self) -> Vec<(&'static str, Value)> {
        let k = self.interval;
        vec![
            ("flow_method", json!(self.flow.name())),
            ("flow_preset", json!(self.flow.preset())),
            ("flow_input", json!("source frames (never stylised), 8-bit BT.601 luma")),
            ("interval", json!(k)),
            ("pixel_range", json!("RGB in [0, 1]; squared errors in [0, 1]^2 units")),
            ("warp", json!("bilinear backward warp X(p + F(p)); samples outside [0, W-1] x [0, H-1] are invalid")),
            (
                "occlusion",
                json!(
                    "forward-backward check: |F + B~|^2 > 0.01 (|F|^2 + |B~|^2) + 0.5, or |grad F|^2 > 0.01 |F|^2 \
                     + 0.002 (central differences), or warped position outside the frame"
                ),
            ),
            (
                "e_warp",
                json!(format!(
                    "Lai et al. 2018 at frame_a = t: sum M_t ||O_t - warp(O_t+{k}, F_t->t+{k})||^2 / (3 * valid \
                     pixels), i.e. denominator = valid pixels x 3 channels (all 3HW values when none is valid)"
                )),
            ),
            (
                "ruder_mse",
                json!(format!(
                    "Ruder et al. 2016 at frame_b = t: sum (M_t (warp(O_t-{k}, F_t->t-{k}) - O_t))^2 / (3HW), \
                     masked zeros in the denominator; the first {k} frame(s) have no row, the mean divides by T-{k}"
                )),
            ),
            ("masked_rmse", json!("ReReVST: per pair sqrt(ruder_mse) (masked zeros in the mean), then averaged")),
            ("floor", json!("*_source columns: the same metrics on the source video (I instead of O)")),
            (
                "summary",
                json!("mean, median and p95 over the T-k pairs; quantiles interpolate linearly between order statistics"),
            ),
        ]
    }
}

/// One scored pair `(a, b = a + k)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameRow {
    /// Index of frame `a` (0-based, in push order); E_warp is reported at `a`.
    pub frame_a: u64,
    pub pts_a: Duration,
    /// Index of frame `b = a + k`; Ruder MSE and masked RMSE are reported at `b`.
    pub frame_b: u64,
    pub pts_b: Duration,
    pub stylised: PairMetrics,
    pub source: PairMetrics,
    /// Share of valid pixels in `M_a` and `M_b`, [0, 1].
    pub valid_fraction_a: f64,
    pub valid_fraction_b: f64,
}

/// Mean, median and 95th percentile of one column.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MetricSummary {
    pub mean: f64,
    pub median: f64,
    pub p95: f64,
}

impl MetricSummary {
    /// Of a non-empty column.
    fn of(values: impl Iterator<Item = f64>) -> Self {
        let mut sorted: Vec<f64> = values.collect();
        sorted.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            let pos = q * (sorted.len() - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(sorted.len() - 1);
            sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
        };
        let (median, p95) = (quantile(0.5), quantile(0.95));
        Self { mean: sorted.iter().sum::<f64>() / sorted.len() as f64, median, p95 }
    }
}

/// Summary over all pairs of a video.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    pub pairs: usize,
    pub e_warp_stylised: MetricSummary,
    pub e_warp_source: MetricSummary,
    pub ruder_mse_stylised: MetricSummary,
    pub ruder_mse_source: MetricSummary,
    pub masked_rmse_stylised: MetricSummary,
    pub masked_rmse_source: MetricSummary,
    pub valid_fraction_a: MetricSummary,
}

impl Summary {
    /// Of non-empty rows.
    fn of(rows: &[FrameRow]) -> Self {
        let col = |f: fn(&FrameRow) -> f64| MetricSummary::of(rows.iter().map(f));
        Self {
            pairs: rows.len(),
            e_warp_stylised: col(|r| r.stylised.e_warp),
            e_warp_source: col(|r| r.source.e_warp),
            ruder_mse_stylised: col(|r| r.stylised.ruder_mse),
            ruder_mse_source: col(|r| r.source.ruder_mse),
            masked_rmse_stylised: col(|r| r.stylised.masked_rmse),
            masked_rmse_source: col(|r| r.source.masked_rmse),
            valid_fraction_a: col(|r| r.valid_fraction_a),
        }
    }
}

struct Held {
    index: u64,
    pts: Duration,
    source: Image,
    stylised: Image,
}

/// Streaming evaluator: memory is `k` source + `k` stylised frames plus one small row per pair.
pub struct Evaluator {
    conventions: Conventions,
    estimator: FlowEstimator,
    held: VecDeque<Held>,
    size: Option<(usize, usize)>,
    frames: u64,
    rows: Vec<FrameRow>,
}

impl Evaluator {
    pub fn new(config: MeasureConfig) -> Result<Self> {
        if config.interval == 0 {
            return Err(TemporalError::Parameter {
                name: "interval",
                value: "0".into(),
                expected: "at least 1 frame",
            });
        }
        Ok(Self {
            conventions: Conventions { flow: config.flow, interval: config.interval },
            estimator: FlowEstimator::new(config.flow)?,
            held: VecDeque::with_capacity(config.interval),
            size: None,
            frames: 0,
            rows: Vec::new(),
        })
    }

    /// Adds the next frame (both versions, same size, same size as earlier frames). Returns the row of the
    /// pair it completes, `(index - k, index)`, once `k` frames came before it. A rejected frame is not
    /// counted.
    pub fn push(&mut self, source: Image, stylised: Image, pts: Duration) -> Result<Option<FrameRow>> {
        let index = self.frames;
        source.check(&format!("frame {index}: source"))?;
        stylised.check(&format!("frame {index}: stylised"))?;
        if source.size() != stylised.size() {
            return Err(TemporalError::FrameSize {
                frame: index,
                stylised_w: stylised.width,
                stylised_h: stylised.height,
                source_w: source.width,
                source_h: source.height,
            });
        }
        let (expected_w, expected_h) = *self.size.get_or_insert(source.size());
        if source.size() != (expected_w, expected_h) {
            return Err(TemporalError::SizeChanged {
                frame: index,
                expected_w,
                expected_h,
                found_w: source.width,
                found_h: source.height,
            });
        }
        // Score before popping: a frame whose pair fails to score leaves the window as it was.
        let row = match self.held.front() {
            Some(a) if self.held.len() == self.conventions.interval => {
                let geometry = PairGeometry::estimate(&mut self.estimator, &a.source, &source)?;
                Some(FrameRow {
                    frame_a: a.index,
                    pts_a: a.pts,
                    frame_b: index,
                    pts_b: pts,
                    stylised: pair_metrics(&geometry, &a.stylised, &stylised)?,
                    source: pair_metrics(&geometry, &a.source, &source)?,
                    valid_fraction_a: geometry.mask_a.valid_fraction(),
                    valid_fraction_b: geometry.mask_b.valid_fraction(),
                })
            }
            _ => None,
        };
        if let Some(row) = row {
            self.held.pop_front();
            self.rows.push(row);
        }
        self.held.push_back(Held { index, pts, source, stylised });
        self.frames += 1;
        Ok(row)
    }

    /// Frames accepted so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Rows so far.
    pub fn rows(&self) -> &[FrameRow] {
        &self.rows
    }

    /// The report, or [`TemporalError::NoFramePairs`] when the video had no more than `k` frames.
    pub fn finish(self) -> Result<Report> {
        if self.rows.is_empty() {
            return Err(TemporalError::NoFramePairs {
                frames: self.frames,
                interval: self.conventions.interval,
            });
        }
        Ok(Report {
            conventions: self.conventions,
            frames: self.frames,
            summary: Summary::of(&self.rows),
            rows: self.rows,
        })
    }
}

/// Where the plot's text comes from: Debian's fonts-dejavu-core. plotters' ab_glyph backend has no
/// built-in font and bundling one would add 700 kB to the binary.
const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const PLOT_SIZE: (u32, u32) = (1000, 500);

/// Whether the PNG plot has text (title, axes, legend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlotLabels {
    Drawn,
    /// The font could not be read: the plot was still drawn, with the two lines only (stylised red,
    /// source blue), so a measurement never fails for a missing font.
    Omitted {
        font: PathBuf,
    },
}

/// Everything measured on one video.
#[derive(Debug, Clone)]
pub struct Report {
    pub conventions: Conventions,
    /// Frames pushed (T).
    pub frames: u64,
    /// One row per pair, T - k of them.
    pub rows: Vec<FrameRow>,
    pub summary: Summary,
}

impl Report {
    /// CSV text: `# key: value` lines with every convention, then a header line and one line per pair.
    pub fn csv(&self) -> String {
        let mut out = String::from("# stylestream temporal consistency report\n");
        out += &format!("# frames: {}\n# pairs: {}\n", self.frames, self.rows.len());
        for (key, value) in self.conventions.entries() {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            out += &format!("# {key}: {value}\n");
        }
        out += "frame_a,pts_a_s,frame_b,pts_b_s,e_warp_stylised,e_warp_source,ruder_mse_stylised,ruder_mse_source,\
                masked_rmse_stylised,masked_rmse_source,valid_fraction_a,valid_fraction_b\n";
        for r in &self.rows {
            let (o, i) = (r.stylised, r.source);
            out += &format!(
                "{},{},{},{},{},{},{},{},{},{},{},{}\n",
                r.frame_a,
                r.pts_a.as_secs_f64(),
                r.frame_b,
                r.pts_b.as_secs_f64(),
                o.e_warp,
                i.e_warp,
                o.ruder_mse,
                i.ruder_mse,
                o.masked_rmse,
                i.masked_rmse,
                r.valid_fraction_a,
                r.valid_fraction_b
            );
        }
        out
    }

    /// JSON text: `{conventions, frames, pairs, summary}`.
    pub fn json(&self) -> String {
        let conventions: serde_json::Map<String, Value> =
            self.conventions.entries().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let value = json!({
            "conventions": conventions,
            "frames": self.frames,
            "pairs": self.rows.len(),
            "summary": self.summary,
        });
        // Non-finite numbers become null, so this cannot fail.
        format!("{value:#}\n")
    }

    /// Writes [`Report::csv`] atomically (temporary name, then rename).
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        write_atomically(path, self.csv().as_bytes())
    }

    /// Writes [`Report::json`] atomically.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_atomically(path, self.json().as_bytes())
    }

    /// Writes a 1000x500 PNG of per-pair E_warp over time (pts of frame `a`, seconds): stylised in red,
    /// source in blue. Atomically.
    pub fn write_plot(&self, path: &Path) -> Result<PlotLabels> {
        let labels = if font_registered() {
            PlotLabels::Drawn
        } else {
            PlotLabels::Omitted { font: FONT_PATH.into() }
        };
        let rgb = self
            .render_plot(labels == PlotLabels::Drawn)
            .map_err(|message| TemporalError::Write { path: path.into(), message })?;
        let mut png = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut png),
            &rgb,
            PLOT_SIZE.0,
            PLOT_SIZE.1,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| TemporalError::Write { path: path.into(), message: format!("PNG encoding: {e}") })?;
        write_atomically(path, &png)?;
        Ok(labels)
    }

    /// `[H, W, 3]` RGB8 pixels of the plot.
    fn render_plot(&self, labelled: bool) -> std::result::Result<Vec<u8>, String> {
        use plotters::prelude::*;
        let (w, h) = PLOT_SIZE;
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        let seconds = |r: &FrameRow| r.pts_a.as_secs_f64();
        let x0 = self.rows.iter().map(seconds).fold(f64::INFINITY, f64::min);
        let x1 = self.rows.iter().map(seconds).fold(f64::NEG_INFINITY, f64::max);
        // A single pair (or equal pts) still needs a non-empty axis.
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        let top = self.rows.iter().map(|r| r.stylised.e_warp.max(r.source.e_warp)).fold(0.0, f64::max);
        let top = if top > 0.0 { top * 1.05 } else { 1e-3 };
        let err = |e: &dyn std::fmt::Display| format!("plotting: {e}");
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(&e))?;
            let mut builder = ChartBuilder::on(&root);
            builder.margin(20);
            if labelled {
                let k = self.conventions.interval;
                builder
                    .caption(
                        format!("E_warp per pair (k = {k}, flow {})", self.conventions.flow),
                        ("sans-serif", 22),
                    )
                    .x_label_area_size(45)
                    .y_label_area_size(80);
            }
            let mut chart = builder.build_cartesian_2d(x0..x1, 0.0..top).map_err(|e| err(&e))?;
            if labelled {
                chart
                    .configure_mesh()
                    .x_desc("time of frame a (s)")
                    .y_desc("E_warp ([0,1]^2 units)")
                    .draw()
                    .map_err(|e| err(&e))?;
            }
            let stylised: fn(&FrameRow) -> f64 = |r| r.stylised.e_warp;
            let source: fn(&FrameRow) -> f64 = |r| r.source.e_warp;
            for (name, colour, value) in [("stylised", RED, stylised), ("source (floor)", BLUE, source)] {
                let points = self.rows.iter().map(|r| (seconds(r), value(r)));
                chart
                    .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
            }
            if labelled {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| err(&e))?;
            }
            root.present().map_err(|e| err(&e))?;
        }
        Ok(rgb)
    }
}

/// Registers DejaVu Sans with plotters once per process; false when it cannot be read.
fn font_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| match fs::read(FONT_PATH) {
        // plotters keeps registered fonts as `&'static [u8]`: leaking the one copy is the price, once.
        Ok(bytes) => plotters::style::register_font(
            "sans-serif",
            plotters::style::FontStyle::Normal,
            Box::leak(bytes.into_boxed_slice()),
        )
        .is_ok(),
        Err(_) => false,
    })
}

/// [`crate::output::write_atomically`] with the error naming the file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::output::write_atomically(path, bytes)
        .map_err(|source| TemporalError::Io { path: path.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: u64, e: f64) -> FrameRow {
        let m = PairMetrics { e_warp: e, ruder_mse: e / 2.0, masked_rmse: (e / 2.0).sqrt() };
        FrameRow {
            frame_a: i,
            pts_a: Duration::from_millis(40 * i),
            frame_b: i + 1,
            pts_b: Duration::from_millis(40 * (i + 1)),
            stylised: m,
            source: PairMetrics { e_warp: e / 10.0, ..m },
            valid_fraction_a: 0.9,
            valid_fraction_b: 0.8,
        }
    }

    #[test]
    fn quantiles_interpolate_linearly() {
        // Sorted 1..=5: median = 3, p95 at position 0.95 * 4 = 3.8 -> 4 + 0.8 * (5 - 4) = 4.8.
        let s = MetricSummary::of([5.0, 1.0, 4.0, 2.0, 3.0].into_iter());
        assert_eq!(s, MetricSummary { mean: 3.0, median: 3.0, p95: 4.8 });
        let s = MetricSummary::of([2.0].into_iter());
        assert_eq!(s, MetricSummary { mean: 2.0, median: 2.0, p95: 2.0 });
    }

    #[test]
    fn plot_without_font_still_renders_lines() {
        let rows: Vec<FrameRow> = (0..20).map(|i| row(i, 0.01 + 0.001 * i as f64)).collect();
        let report = Report {
            conventions: Conventions { flow: FlowMethod::default(), interval: 1 },
            frames: 21,
            summary: Summary::of(&rows),
            rows,
        };
        let rgb = report.render_plot(false).unwrap();
        let red = rgb.chunks_exact(3).filter(|p| p == &[255, 0, 0]).count();
        let blue = rgb.chunks_exact(3).filter(|p| p == &[0, 0, 255]).count();
        assert!(red > 500 && blue > 500, "red {red}, blue {blue}");
    }

    #[test]
    fn atomic_write_rejects_directories_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomically(Path::new("/"), b"x").is_err());
        let target = dir.path().join("missing-dir").join("r.csv");
        let err = write_atomically(&target, b"x").unwrap_err().to_string();
        assert!(err.contains("missing-dir"), "{err}");
        write_atomically(&dir.path().join("r.csv"), b"x").unwrap();
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("r.csv")]);
    }
}
