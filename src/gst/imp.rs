//! The `stylestream` element's implementation: a `GstVideoFilter` working in place on packed RGB
//! buffers.
//!
//! Each frame goes through the same functions as the CLI's stage graph (`video::stages`):
//! [`Frame::from_video_frame`] (the appsink's packing), [`Frame::to_tensor`], [`Stylizer::stylize`],
//! [`Frame::with_pixels`] and [`Consistency::apply`], so the element's output equals the CLI's for
//! the same frames by construction (`tests/gst_element.rs` checks it).
//!
//! Errors come in the three tiers of gst-plugins-rs: `error_msg!` from `start` (the model or style
//! cannot be loaded: the pipeline refuses to start, naming the file), `loggable_error!` from caps
//! negotiation, and `element_imp_error!` + `FlowError::Error` for a frame the model fails on. Panics
//! never cross the FFI boundary: the bindings' trampolines catch them and turn them into element
//! errors, and nothing here unwraps a lock (a poisoned lock still holds usable settings).
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use candle_core::{DType, Device};
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_base::subclass::BaseTransformMode;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use gstreamer_video::subclass::prelude::*;

use crate::checkpoint;
use crate::device::DeviceChoice;
use crate::image_io;
use crate::models::neat::Controls;
use crate::models::Network;
use crate::video::consistency::{reading, Consistency, ConsistencyOptions};
use crate::video::frame::PACKED_RGB;
use crate::video::stylizer::ModelChoice;
use crate::video::{Frame, Identity, NeatStylizer, StyA2kStylizer, Stylizer};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "stylestream",
        gst::DebugColorFlags::empty(),
        Some("Neural style transfer (StyA2K, NeAT) on video frames"),
    )
});

/// The model the element runs unless `model` is set: the shipped StyA2K (`weights/`).
const DEFAULT_MODEL: &str = "default";
const DEFAULT_ALPHA: f64 = 1.0;
const DEFAULT_DEVICE: &str = "cpu";
/// As the CLI's `--style-size`, so the element and the CLI encode the same style.
const DEFAULT_STYLE_SIZE: u32 = 512;
const DEFAULT_MAX_SIDE: u32 = 0;
const DEFAULT_STABILIZE: f32 = 0.0;
const DEFAULT_MONITOR: u32 = 0;
/// Name of the element messages the `monitor` property posts.
pub const MONITOR_MESSAGE: &str = "stylestream-monitor";

/// Storage type of weights and activations (the `precision` property; `--precision` of `image`).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstStylestreamPrecision")]
pub enum Precision {
    #[enum_value(name = "32-bit float", nick = "f32")]
    F32,
    #[enum_value(name = "16-bit float (StyA2K only)", nick = "f16")]
    F16,
    #[enum_value(name = "bfloat16 (StyA2K only)", nick = "bf16")]
    Bf16,
}

impl Precision {
    fn dtype(self) -> DType {
        let precision = match self {
            Precision::F32 => crate::device::Precision::F32,
            Precision::F16 => crate::device::Precision::F16,
            Precision::Bf16 => crate::device::Precision::Bf16,
        };
        precision.dtype()
    }
}

/// The properties, as set; read once in `start` (all but `style` apply from the next start).
#[derive(Debug, Clone)]
struct Settings {
    /// As `--model`.
    model: String,
    style: Option<PathBuf>,
    alpha: f64,
    device: String,
    precision: Precision,
    style_size: u32,
    /// 0: the model runs at the frame's size.
    max_side: u32,
    stabilize: f32,
    /// 0: no monitor; N: an element message every N frames.
    monitor: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: DEFAULT_MODEL.into(),
            style: None,
            alpha: DEFAULT_ALPHA,
            device: DEFAULT_DEVICE.into(),
            precision: Precision::F32,
            style_size: DEFAULT_STYLE_SIZE,
            max_side: DEFAULT_MAX_SIDE,
            stabilize: DEFAULT_STABILIZE,
            monitor: DEFAULT_MONITOR,
        }
    }
}

/// What `start` loaded and the frames update: the model with its encoded style (the style cache),
/// the stabiliser and monitor, the frame count.
struct State {
    stylizer: Box<dyn Stylizer>,
    device: Device,
    /// Frames are cast to this before the model and back to f32 after (f32: no cast).
    dtype: DType,
    consistency: Option<Consistency>,
    max_side: u32,
    monitor_every: u32,
    frames: u64,
}

#[derive(Default)]
pub struct Stylestream {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Set when `style` changes while running; the streaming thread re-encodes the style before the
    /// next frame, so the pipeline never stops for it.
    restyle: AtomicBool,
    /// A stylizer handed over in Rust (the `stylestream` binary builds its own from its flags), used
    /// by the next `start` instead of loading `model`.
    preset: Mutex<Option<Box<dyn Stylizer>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Stylestream {
    pub(super) fn set_stylizer(&self, stylizer: Box<dyn Stylizer>) {
        *lock(&self.preset) = Some(stylizer);
    }

    /// Loads the model onto its device and encodes the style: everything `start` needs, or the
    /// one-line reason it cannot (naming the file at fault).
    fn load(&self, settings: &Settings) -> Result<State, String> {
        let choice: DeviceChoice = settings.device.parse().map_err(|e| format!("device: {e}"))?;
        let preset = lock(&self.preset).take();
        // A preset was built by the caller, on the CPU in f32 (the CLI's stylizers).
        let device = if preset.is_some() { Device::Cpu } else { choice.open().map_err(|e| e.to_string())? };
        let (stylizer, dtype) = match preset {
            Some(stylizer) => (stylizer, DType::F32),
            None => {
                let dtype = settings.precision.dtype();
                (self.load_model(settings, &device, dtype)?, dtype)
            }
        };
        let consistency = Consistency::new(&ConsistencyOptions {
            stabilize: settings.stabilize,
            monitor: settings.monitor > 0,
            monitor_csv: None,
        })
        .map_err(|e| e.to_string())?;
        Ok(State {
            stylizer,
            device,
            dtype,
            consistency,
            max_side: settings.max_side,
            monitor_every: settings.monitor,
            frames: 0,
        })
    }

    fn load_model(
        &self,
        settings: &Settings,
        device: &Device,
        dtype: DType,
    ) -> Result<Box<dyn Stylizer>, String> {
        let choice: ModelChoice = settings.model.parse().map_err(|e| format!("model: {e}"))?;
        let ModelChoice::Network(source) = choice else { return Ok(Box::new(Identity)) };
        let network = checkpoint::load_as(&source, device, dtype).map_err(|e| e.to_string())?;
        let path = settings.style.as_ref().ok_or("`style` is not set: this model needs a style image")?;
        let style =
            image_io::read_picture(path, Some(settings.style_size), device).map_err(|e| e.to_string())?;
        let encoding = |e: candle_core::Error| format!("{}: encoding the style: {e}", path.display());
        gst::info!(
            CAT,
            imp = self,
            "model {} on {}, style {}",
            settings.model,
            settings.device,
            path.display()
        );
        let stylizer: Box<dyn Stylizer> = match network {
            Network::StyA2K(model) => {
                let style = style.rgb.to_dtype(dtype).map_err(encoding)?;
                Box::new(StyA2kStylizer::new(*model, &style, settings.alpha).map_err(encoding)?)
            }
            Network::Neat(model) => {
                let style = style.rgb.to_dtype(dtype).map_err(encoding)?;
                let controls = Controls { alpha: settings.alpha, alpha_prior: false };
                Box::new(NeatStylizer::new(model, &style, controls).map_err(encoding)?)
            }
        };
        Ok(stylizer)
    }

    /// Re-encodes the style after `style` changed while running; on failure the previous style stays
    /// (a warning, not an error: a half-written file must not stop a live stream).
    fn restyle(&self, state: &mut State) {
        let (path, style_size) = {
            let settings = lock(&self.settings);
            (settings.style.clone(), settings.style_size)
        };
        let Some(path) = path else {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                ("`style` was unset: keeping the previous style")
            );
            return;
        };
        let loaded = image_io::read_picture(&path, Some(style_size), &state.device)
            .map_err(|e| e.to_string())
            .and_then(|picture| {
                let style = picture.rgb.to_dtype(state.dtype).map_err(|e| e.to_string())?;
                state
                    .stylizer
                    .set_style(&style)
                    .map_err(|e| format!("{}: encoding the style: {e}", path.display()))
            });
        match loaded {
            Ok(()) => gst::info!(CAT, imp = self, "style changed to {}", path.display()),
            Err(e) => gst::element_imp_warning!(
                self,
                gst::ResourceError::Read,
                ("keeping the previous style: {}", e)
            ),
        }
    }

    /// One frame through the model: the CLI's pre-process, stylise and post-process steps.
    fn stylize(&self, state: &mut State, frame: &Frame) -> Result<Frame, String> {
        let _span = tracing::debug_span!("stylise", frame = frame.index).entered();
        let input = match model_size(frame, state.max_side) {
            Some((w, h)) => Cow::Owned(resized(frame, w, h)),
            None => Cow::Borrowed(frame),
        };
        let tensor = input.to_tensor(&state.device).and_then(|t| t.to_dtype(state.dtype));
        let out = tensor
            .and_then(|t| state.stylizer.stylize(&t))
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| input.with_pixels(&t))
            .map_err(|e| e.to_string())?;
        let styled = if out.width == frame.width && out.height == frame.height {
            out
        } else {
            resized(&out, frame.width, frame.height)
        };
        match state.consistency.as_mut() {
            Some(post) => post.apply(frame, styled).map_err(|e| e.to_string()),
            None => Ok(styled),
        }
    }

    /// Posts the monitor's rolling E_warp as an element message every `monitor` frames.
    fn post_monitor(&self, state: &State) {
        if state.monitor_every == 0 || state.frames % u64::from(state.monitor_every) != 0 {
            return;
        }
        let Some(r) = reading(&state.consistency.as_ref().and_then(Consistency::monitor)) else { return };
        let mut s = gst::Structure::builder(MONITOR_MESSAGE)
            .field("frames", state.frames)
            .field("pairs", r.pairs)
            .field("dropped", r.dropped);
        if let (Some(styled), Some(source)) = (r.rolling_e_warp_stylised, r.rolling_e_warp_source) {
            s = s.field("e-warp", styled).field("e-warp-source", source);
        }
        let _ = self.obj().post_message(gst::message::Element::builder(s.build()).src(&*self.obj()).build());
    }
}

/// The size the model runs at when `max_side` (non-zero) is below the frame's longer side: scaled
/// down, aspect kept, each side at least 1.
fn model_size(frame: &Frame, max_side: u32) -> Option<(usize, usize)> {
    let (w, h, max) = (frame.width, frame.height, max_side as usize);
    if max == 0 || w.max(h) <= max {
        return None;
    }
    let scale = max as f64 / w.max(h) as f64;
    Some((((w as f64 * scale).round() as usize).max(1), ((h as f64 * scale).round() as usize).max(1)))
}

/// `frame` resampled to `width x height` (triangle filter: cheap, and smooth enough both ways).
fn resized(frame: &Frame, width: usize, height: usize) -> Frame {
    let image = image::RgbImage::from_raw(frame.width as u32, frame.height as u32, frame.data.clone())
        .expect("a frame holds width x height x 3 bytes");
    let out =
        image::imageops::resize(&image, width as u32, height as u32, image::imageops::FilterType::Triangle);
    Frame { width, height, data: out.into_raw(), ..*frame }
}

#[glib::object_subclass]
impl ObjectSubclass for Stylestream {
    const NAME: &'static str = "GstStylestream";
    type Type = super::Stylestream;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for Stylestream {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("Model bundle (.safetensors, StyA2K or NeAT), default or default-neat (the shipped models), formula:SEED, formula-neat:SEED (untrained test weights) or identity")
                    .default_value(Some(DEFAULT_MODEL))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("style")
                    .nick("Style")
                    .blurb("Style image (JPEG, PNG, WebP); setting it while playing switches the style from the next frame")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("alpha")
                    .nick("Alpha")
                    .blurb("Style strength: 0 keeps the content, 1 is the full style, up to 2 exaggerates")
                    .minimum(0.0)
                    .maximum(2.0)
                    .default_value(DEFAULT_ALPHA)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("device")
                    .nick("Device")
                    .blurb("Where the model runs: cpu, cuda or cuda:N (CUDA needs a build with feature cuda)")
                    .default_value(Some(DEFAULT_DEVICE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("precision", Precision::F32)
                    .nick("Precision")
                    .blurb("Storage type of weights and activations (attention sums stay f32)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("style-size")
                    .nick("Style size")
                    .blurb("Scale the style image down so its longer side is at most this many pixels")
                    .minimum(16)
                    .maximum(4096)
                    .default_value(DEFAULT_STYLE_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-side")
                    .nick("Max side")
                    .blurb("Run the model on a copy scaled down to this longer side, then scale the result back up (0: full size)")
                    .maximum(16384)
                    .default_value(DEFAULT_MAX_SIDE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("stabilize")
                    .nick("Stabilize")
                    .blurb("Blend each frame with the flow-warped previous output where the flow is reliable (0: off)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_STABILIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("monitor")
                    .nick("Monitor")
                    .blurb("Post the rolling warping error (E_warp) as a `stylestream-monitor` element message every N frames (0: off)")
                    .default_value(DEFAULT_MONITOR)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        // The types are checked by GObject against the specs above before this is called.
        match pspec.name() {
            "model" => {
                settings.model =
                    value.get::<Option<String>>().ok().flatten().unwrap_or_else(|| DEFAULT_MODEL.into())
            }
            "style" => {
                settings.style = value.get::<Option<String>>().ok().flatten().map(PathBuf::from);
                self.restyle.store(true, Ordering::SeqCst);
            }
            "alpha" => settings.alpha = value.get().unwrap_or(DEFAULT_ALPHA),
            "device" => settings.device = value.get::<Option<String>>().ok().flatten().unwrap_or_default(),
            "precision" => settings.precision = value.get().unwrap_or(Precision::F32),
            "style-size" => settings.style_size = value.get().unwrap_or(DEFAULT_STYLE_SIZE),
            "max-side" => settings.max_side = value.get().unwrap_or(DEFAULT_MAX_SIDE),
            "stabilize" => settings.stabilize = value.get().unwrap_or(DEFAULT_STABILIZE),
            "monitor" => settings.monitor = value.get().unwrap_or(DEFAULT_MONITOR),
            other => gst::warning!(CAT, imp = self, "no property `{other}`"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "model" => settings.model.to_value(),
            "style" => settings.style.as_ref().map(|p| p.display().to_string()).to_value(),
            "alpha" => settings.alpha.to_value(),
            "device" => settings.device.to_value(),
            "precision" => settings.precision.to_value(),
            "style-size" => settings.style_size.to_value(),
            "max-side" => settings.max_side.to_value(),
            "stabilize" => settings.stabilize.to_value(),
            "monitor" => settings.monitor.to_value(),
            // GObject only asks for the properties declared above.
            other => unreachable!("no property `{other}`"),
        }
    }
}

impl GstObjectImpl for Stylestream {}

impl ElementImpl for Stylestream {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Stylestream",
                "Filter/Effect/Video",
                "Neural style transfer of every frame with StyA2K or NeAT, optionally stabilised and monitored for flicker",
                "stylestream developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            // Any size and rate; the output has the input's caps (the filter works in place).
            let caps = gst_video::VideoCapsBuilder::new().format_list(PACKED_RGB).build();
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .map(|direction| {
                    let name = if direction == gst::PadDirection::Src { "src" } else { "sink" };
                    gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps)
                        .expect("static pad templates are valid")
                })
                .collect()
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for Stylestream {
    const MODE: BaseTransformMode = BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let state = self.load(&settings).map_err(|e| {
            gst::error!(CAT, imp = self, "{e}");
            gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e))
        })?;
        self.restyle.store(false, Ordering::SeqCst);
        *lock(&self.state) = Some(state);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // Dropping the state stops the monitor's worker thread.
        *lock(&self.state) = None;
        Ok(())
    }
}

impl VideoFilterImpl for Stylestream {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        if !PACKED_RGB.contains(&in_info.format()) || in_info.format() != out_info.format() {
            return Err(gst::loggable_error!(
                CAT,
                "caps {incaps} -> {outcaps}: expected one packed RGB format on both sides"
            ));
        }
        if (in_info.width(), in_info.height()) != (out_info.width(), out_info.height()) {
            return Err(gst::loggable_error!(
                CAT,
                "caps {incaps} -> {outcaps}: the frame size must not change"
            ));
        }
        gst::debug!(CAT, imp = self, "frames {}x{} {}", in_info.width(), in_info.height(), in_info.format());
        self.parent_set_info(incaps, in_info, outcaps, out_info)
    }

    fn transform_frame_ip(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state = lock(&self.state);
        let Some(state) = state.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("a frame arrived before start"));
            return Err(gst::FlowError::NotNegotiated);
        };
        if self.restyle.swap(false, Ordering::SeqCst) {
            self.restyle(state);
        }
        let index = state.frames;
        let pts = frame.buffer().pts();
        let styled = Frame::from_video_frame(frame, pts, index)
            .and_then(|input| self.stylize(state, &input))
            .and_then(|styled| styled.write_into(frame));
        if let Err(e) = styled {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("frame {} (pts {}): {}", index, pts.display(), e)
            );
            return Err(gst::FlowError::Error);
        }
        state.frames += 1;
        self.post_monitor(state);
        Ok(gst::FlowSuccess::Ok)
    }
}
