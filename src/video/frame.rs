//! Frames between GStreamer and the model: packed 8-bit RGB with their timing, read from and written
//! to GStreamer's packed RGB formats (the appsink's RGB, and the element's RGBA/BGRx/... in place).
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
        let segment = sample.segment().and_then(|s| s.downcast_ref::<gst::ClockTime>());
        let pts = buffer.pts().map(|pts| segment.and_then(|s| s.to_running_time(pts)).unwrap_or(pts));
        Frame::from_video_frame(&frame, pts, index).map_err(element)
    }

    /// Copies a mapped frame in one of the [`PACKED_RGB`] formats into packed RGB rows, honouring the
    /// row stride (GStreamer pads RGB rows to 4 bytes: width 322 has stride 968, not 966). `pts` is
    /// the caller's (the appsink maps it to running time; the element keeps the buffer's).
    pub fn from_video_frame(
        frame: &gst_video::VideoFrameRef<&gst::BufferRef>,
        pts: Option<gst::ClockTime>,
        index: u64,
    ) -> Result<Self, String> {
        let packing = Packing::of(frame.format())?;
        let (width, height) = (frame.width() as usize, frame.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let plane = frame.plane_data(0).map_err(|e| e.to_string())?;
        let mut data = Vec::with_capacity(width * height * 3);
        for row in plane.chunks(stride).take(height) {
            if packing.size == 3 && packing.rgb == [0, 1, 2] {
                data.extend_from_slice(&row[..width * 3]);
            } else {
                for pixel in row[..width * packing.size].chunks_exact(packing.size) {
                    data.extend(packing.rgb.map(|offset| pixel[offset]));
                }
            }
        }
        let duration = frame.buffer().duration();
        Ok(Frame { width, height, data, pts, duration, index })
    }

    /// Writes this frame's pixels into the R, G and B bytes of `out` (same size, a [`PACKED_RGB`]
    /// format); the other bytes (alpha, padding) are left as they are.
    pub fn write_into(&self, out: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>) -> Result<(), String> {
        let packing = Packing::of(out.format())?;
        if (out.width() as usize, out.height() as usize) != (self.width, self.height) {
            return Err(format!(
                "frame is {}x{}, the output buffer {}x{}",
                self.width,
                self.height,
                out.width(),
                out.height()
            ));
        }
        let stride = out.plane_stride()[0] as usize;
        let plane = out.plane_data_mut(0).map_err(|e| e.to_string())?;
        for (row, src) in plane.chunks_mut(stride).zip(self.data.chunks(self.width * 3)) {
            for (pixel, rgb) in
                row[..self.width * packing.size].chunks_exact_mut(packing.size).zip(src.chunks(3))
            {
                for (offset, value) in packing.rgb.iter().zip(rgb) {
                    pixel[*offset] = *value;
                }
            }
        }
        Ok(())
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
    ///
    /// One pass over the bytes rather than candle's permute, cast and divide (three passes, two
    /// temporaries): a live model waits for this conversion. Each value is computed as candle's
    /// `/ 255.0` computes it (an affine map: times `1/255` rounded to f32, plus 0), so it is the same.
    pub fn to_tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        let scale = (1.0f64 / 255.0) as f32;
        let plane = self.width * self.height;
        let mut chw = vec![0f32; 3 * plane];
        // [H, W, 3] u8 -> [3, H, W] f32 / 255
        for (i, pixel) in self.data.chunks_exact(3).enumerate() {
            for (c, &value) in pixel.iter().enumerate() {
                chw[c * plane + i] = f32::from(value) * scale + 0.0;
            }
        }
        Tensor::from_vec(chw, (1, 3, self.height, self.width), device)
    }

    /// This frame's timing with new pixels from a `[1, 3, H, W]` model output (clamped, rounded as
    /// `image_io::to_rgb8` does, in one pass: a live frame waits for this too).
    pub fn with_pixels(&self, output: &Tensor) -> candle_core::Result<Frame> {
        let output = output.to_dtype(candle_core::DType::F32)?;
        let rgb = crate::ops::convert::planar_to_rgb8(&output, self.height, self.width)?;
        Ok(Frame { data: rgb.flatten_all()?.to_vec1::<u8>()?, ..*self })
    }
}

/// The 8-bit packed RGB formats frames are read from and written to: one plane, 3 or 4 bytes a pixel.
pub const PACKED_RGB: [gst_video::VideoFormat; 10] = {
    use gst_video::VideoFormat::*;
    [Rgb, Bgr, Rgba, Bgra, Argb, Abgr, Rgbx, Bgrx, Xrgb, Xbgr]
};

/// Where R, G and B sit inside one pixel of a [`PACKED_RGB`] format, and the pixel's size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packing {
    rgb: [usize; 3],
    size: usize,
}

impl Packing {
    fn of(format: gst_video::VideoFormat) -> Result<Self, String> {
        use gst_video::VideoFormat::*;
        let (rgb, size) = match format {
            Rgb => ([0, 1, 2], 3),
            Bgr => ([2, 1, 0], 3),
            Rgba | Rgbx => ([0, 1, 2], 4),
            Bgra | Bgrx => ([2, 1, 0], 4),
            Argb | Xrgb => ([1, 2, 3], 4),
            Abgr | Xbgr => ([3, 2, 1], 4),
            other => return Err(format!("format {other} is not packed 8-bit RGB")),
        };
        Ok(Packing { rgb, size })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of one pixel of a format, from its R, G, B.
    type Layout = fn([u8; 3]) -> Vec<u8>;

    /// A 3x2 buffer of `format` (rows padded to 4 bytes, as GStreamer lays them out) filled by `pixel`.
    fn buffer(
        format: gst_video::VideoFormat,
        pixel: impl Fn(usize, usize) -> Vec<u8>,
    ) -> (gst::Buffer, gst_video::VideoInfo) {
        let info = gst_video::VideoInfo::builder(format, 3, 2).build().unwrap();
        let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
        buffer.get_mut().unwrap().map_writable().unwrap().fill(0);
        {
            let mut frame =
                gst_video::VideoFrameRef::from_buffer_ref_writable(buffer.get_mut().unwrap(), &info).unwrap();
            let stride = frame.plane_stride()[0] as usize;
            let plane = frame.plane_data_mut(0).unwrap();
            for y in 0..2 {
                let row: Vec<u8> = (0..3).flat_map(|x| pixel(x, y)).collect();
                plane[y * stride..y * stride + row.len()].copy_from_slice(&row);
            }
        }
        (buffer, info)
    }

    #[test]
    fn packed_formats_read_and_write_the_same_rgb() {
        gst::init().unwrap();
        // Pixel (x, y) has R = 10x + y, G = 100 + R, B = 200 + R; x/A bytes are 7.
        let rgb =
            |x: usize, y: usize| [(10 * x + y) as u8, (110 + 10 * x + y) as u8, (210 + 10 * x + y) as u8];
        let expected: Vec<u8> = (0..2).flat_map(|y| (0..3).flat_map(move |x| rgb(x, y))).collect();
        let layouts: [(gst_video::VideoFormat, Layout); 4] = [
            (gst_video::VideoFormat::Rgb, |[r, g, b]| vec![r, g, b]),
            (gst_video::VideoFormat::Bgrx, |[r, g, b]| vec![b, g, r, 7]),
            (gst_video::VideoFormat::Rgba, |[r, g, b]| vec![r, g, b, 7]),
            (gst_video::VideoFormat::Argb, |[r, g, b]| vec![7, r, g, b]),
        ];
        for (format, layout) in layouts {
            let (buffer, info) = buffer(format, |x, y| layout(rgb(x, y)));
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info).unwrap();
            let read = Frame::from_video_frame(&frame, None, 0).unwrap();
            assert_eq!(read.data, expected, "{format}");
            // Written back over a frame of zeros in R, G, B: the same bytes, the 7s untouched.
            let (mut target, _) = buffer_with_zero_rgb(format, layout);
            let mut out =
                gst_video::VideoFrameRef::from_buffer_ref_writable(target.get_mut().unwrap(), &info).unwrap();
            read.write_into(&mut out).unwrap();
            drop(out);
            assert_eq!(
                target.map_readable().unwrap().as_slice(),
                buffer.map_readable().unwrap().as_slice(),
                "{format}"
            );
        }
    }

    fn buffer_with_zero_rgb(
        format: gst_video::VideoFormat,
        layout: Layout,
    ) -> (gst::Buffer, gst_video::VideoInfo) {
        buffer(format, |_, _| layout([0, 0, 0]))
    }

    #[test]
    fn the_model_input_is_candles_permute_cast_and_divide_bit_for_bit() {
        // Every byte value (37 is coprime with 256), in a frame that is not square.
        let (width, height) = (19, 14);
        let data: Vec<u8> = (0..width * height * 3).map(|i| (i * 37 % 256) as u8).collect();
        let frame = Frame { width, height, data, pts: None, duration: None, index: 0 };
        let ours = frame.to_tensor(&Device::Cpu).unwrap();
        let hwc = Tensor::from_slice(&frame.data, (height, width, 3), &Device::Cpu).unwrap();
        let candle = (hwc.permute((2, 0, 1)).unwrap().to_dtype(candle_core::DType::F32).unwrap() / 255.0)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        assert_eq!(ours.dims(), &[1, 3, height, width]);
        let bits = |t: &Tensor| -> Vec<u32> {
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
        };
        assert_eq!(bits(&ours), bits(&candle));
    }

    #[test]
    fn new_pixels_are_image_io_to_rgb8_bit_for_bit() {
        // Values below 0, above 1 and on every rounding edge of the 8-bit scale.
        let (width, height) = (23, 11);
        let values: Vec<f32> = (0..3 * width * height).map(|i| i as f32 / 512.0 - 0.1).collect();
        let output = Tensor::from_vec(values, (1, 3, height, width), &Device::Cpu).unwrap();
        let frame = Frame { width, height, data: Vec::new(), pts: None, duration: None, index: 0 };
        let ours = frame.with_pixels(&output).unwrap().data;
        assert_eq!(ours, crate::image_io::to_rgb8(&output).unwrap().into_raw());
    }

    #[test]
    fn planar_formats_are_refused() {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 4, 2).build().unwrap();
        let buffer = gst::Buffer::with_size(info.size()).unwrap();
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info).unwrap();
        let e = Frame::from_video_frame(&frame, None, 0).unwrap_err();
        assert_eq!(e, "format I420 is not packed 8-bit RGB");
    }
}
