//! `stylestream` as a GStreamer element, so any pipeline can stylise video:
//!
//! ```sh
//! gst-launch-1.0 v4l2src ! videoconvert ! stylestream style=art.jpg ! videoconvert ! autovideosink
//! ```
//!
//! A `GstVideoFilter` on packed RGB (RGB, RGBA, BGRx, ... any size) that runs the CLI's per-frame path
//! in place ([`imp`]). Properties (`gst-inspect-1.0 stylestream` lists them with ranges and
//! defaults): `model`, `style` (switchable while playing), `alpha`, `device`, `precision`,
//! `style-size`, `max-side`, `stabilize`, `monitor` (element messages named [`MONITOR_MESSAGE`]).
//!
//! Two ways in: [`register_once`] registers the element inside this process (the CLI's
//! element pipelines, tests), and the same crate built as a `cdylib` is a plugin file GStreamer loads
//! from `GST_PLUGIN_PATH` (`scripts/install-gst-plugin.sh`; the descriptor comes from
//! `plugin_define!`). Cargo cannot switch `crate-type` on a feature, so the plugin file is built on
//! demand with `cargo rustc --lib --crate-type cdylib` rather than on every build.
use std::sync::OnceLock;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_base as gst_base;
use gstreamer_video as gst_video;

use crate::video::Stylizer;

mod imp;
pub mod stream;

pub use imp::{Precision, MONITOR_MESSAGE};

glib::wrapper! {
    /// The `stylestream` element.
    pub struct Stylestream(ObjectSubclass<imp::Stylestream>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

impl Stylestream {
    /// Runs `stylizer` (built on the CPU, f32, its style already encoded) from the next start instead
    /// of loading `model`: the `stylestream` binary builds its model from its own flags (NeAT's
    /// included) and hands it over. `style` still switches the style while playing.
    pub fn set_stylizer(&self, stylizer: Box<dyn Stylizer>) {
        self.imp().set_stylizer(stylizer);
    }
}

/// Adds the element to `plugin` (the plugin's init function).
fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "stylestream", gst::Rank::NONE, Stylestream::static_type())
}

gst::plugin_define!(
    stylestream,
    env!("CARGO_PKG_DESCRIPTION"),
    register,
    env!("CARGO_PKG_VERSION"),
    // GStreamer's name for the MIT licence (the crate is MIT OR Apache-2.0).
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    // Origin: there is no public home to point at yet.
    "stylestream (built from source)"
);

/// Registers the element in this process, once (later calls return the first outcome). GStreamer
/// must be initialised.
pub fn register_once() -> Result<(), glib::BoolError> {
    static REGISTERED: OnceLock<Result<(), glib::BoolError>> = OnceLock::new();
    REGISTERED.get_or_init(plugin_register_static).clone()
}
