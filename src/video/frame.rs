//! Frames between GStreamer and the model: packed 8-bit RGB with their timing.
use std::time::Instant;

use candle_core::{Device, Tensor};
use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::VideoError;

/// One video frame: packed RGB rows (no padding), `[H, W, 3]` bytes.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
    /// Presentation time as running time: the source PTS mapped through its segment, so a container's
    /// edit-list offset does not delay video against audio.
    pub pts: Option<gst::ClockTime>,
    pub duration: Option<gst::ClockTime>,
    /// Position in decode order, from 0.
    pub index: u64,
    /// When the frame left the source, for latency statistics.
    pub captured: Instant,
}

impl Frame {
    /// Copies an appsink sample with RGB caps into a packed frame, honouring the row stride
    /// (GStreamer pads RGB rows to 4 bytes: width 322 has stride 968, not 966).
    pub fn from_sample(sample: &gst::Sample, index: u64) -> Result<Self, VideoError> {
        let element = |message: String| VideoError::Element { element: "frames".into(), message };
        let caps = sample.caps().ok_or_else(|| element("sample without caps".into()))?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| element(e.to_string()))?;
        let buffer = sample.buffer().ok_or_else(|| element("sample without buffer".into()))?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|e| element(e.to_string()))?;
        let (width, height) = (info.width() as usize, info.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let plane = frame.plane_data(0).map_err(|e| element(e.to_string()))?;
        let mut data = Vec::with_capacity(width * height * 3);
        for row in plane.chunks(stride).take(height) {
            data.extend_from_slice(&row[..width * 3]);
        }
        let segment = sample.segment().and_then(|s| s.downcast_ref::<gst::ClockTime>());
        let pts = buffer.pts().map(|pts| segment.and_then(|s| s.to_running_time(pts)).unwrap_or(pts));
        Ok(Frame { width, height, data, pts, duration: buffer.duration(), index, captured: Instant::now() })
    }

    /// A buffer for an appsrc whose caps are [`Frame::caps`], rows padded to GStreamer's stride.
    pub fn to_buffer(&self) -> Result<gst::Buffer, VideoError> {
        let info = self.video_info()?;
        let stride = info.stride()[0] as usize;
        let mut buffer = gst::Buffer::with_size(info.size())
            .map_err(|e| VideoError::Element { element: "styled".into(), message: e.to_string() })?;
        {
            let buf = buffer.get_mut().expect("a new buffer is writable");
            buf.set_pts(self.pts);
            buf.set_duration(self.duration);
            let mut map = buf.map_writable().expect("a new buffer maps");
            for (dst, src) in map.chunks_mut(stride).zip(self.data.chunks(self.width * 3)) {
                dst[..src.len()].copy_from_slice(src);
            }
        }
        Ok(buffer)
    }

    fn video_info(&self) -> Result<gst_video::VideoInfo, VideoError> {
        gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, self.width as u32, self.height as u32)
            .build()
            .map_err(|e| VideoError::Element { element: "styled".into(), message: e.to_string() })
    }

    /// The same pixels as an interleaved `[H, W, 3]` image in [0, 1], for the temporal measures.
    pub fn to_image(&self) -> Result<crate::temporal::Image, crate::temporal::TemporalError> {
        crate::temporal::Image::from_rgb8(self.width, self.height, self.width * 3, &self.data)
    }

    /// The top-left `width x height` of this frame (at most its own size).
    pub fn cropped(&self, width: usize, height: usize) -> Frame {
        let (width, height) = (width.min(self.width), height.min(self.height));
        let data = self
            .data
            .chunks(self.width * 3)
            .take(height)
            .flat_map(|row| &row[..width * 3])
            .copied()
            .collect();
        Frame { width, height, data, ..*self }
    }

    /// The model input: `[1, 3, H, W]` f32 RGB in [0, 1].
    pub fn to_tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        let hwc = Tensor::from_slice(&self.data, (self.height, self.width, 3), device)?;
        // [H, W, 3] u8 -> [1, 3, H, W] f32 / 255
        (hwc.permute((2, 0, 1))?.to_dtype(candle_core::DType::F32)? / 255.0)?.unsqueeze(0)
    }

    /// This frame's timing with new pixels from a `[1, 3, H, W]` model output (clamped, rounded).
    pub fn with_pixels(&self, output: &Tensor) -> candle_core::Result<Frame> {
        let rgb = crate::image_io::to_rgb8(output)?;
        Ok(Frame { data: rgb.into_raw(), ..*self })
    }
}

/// Fixed caps of packed RGB frames of a given size for the appsrc; the frame rate is 0/1 (variable:
/// every buffer carries its own timestamps) when not known.
pub fn rgb_caps(width: usize, height: usize, framerate: Option<gst::Fraction>) -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Rgb)
        .width(width as i32)
        .height(height as i32)
        .framerate(framerate.unwrap_or(gst::Fraction::new(0, 1)))
        .pixel_aspect_ratio(gst::Fraction::new(1, 1))
        .build()
}
