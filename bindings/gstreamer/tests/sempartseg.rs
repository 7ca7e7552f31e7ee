//! `sempartseg` in real GStreamer pipelines (appsrc or videotestsrc in, appsink out): the same
//! masks as `sempart segment` on the example images, every mode and input format, the boxes
//! as region-of-interest metadata, resets on flush, segment, EOS and a new frame size, and
//! errors (a bad model, unsupported caps, bad properties) as GStreamer errors.
//!
//! The example-image test needs the default model (`scripts/setup.sh`); the others run on the
//! tiny fixture model. With `SEMPART_GST_CLI_MASKS=DIR` (the test command sets it), the masks
//! are also compared with the `NAME.mask.png` files `sempart segment --out DIR` wrote.

use gst::prelude::*;
use gst_app::{AppSink, AppSrc};
use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoInfo, VideoRegionOfInterestMeta};
use sempart::files::decode::load_rgb;
use sempart::model_format::{default_model_path, Precision};
use sempart::{Frame, Options, PixelFormat, Segmenter};
use std::path::{Path, PathBuf};
use std::sync::Once;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstsempart::plugin_register_static().expect("the plugin registers");
    });
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

fn tiny() -> String {
    repo("tests/fixtures/tiny.onnx").display().to_string()
}

/// What a pipeline produced: the output buffers with their caps, and the bus's element
/// messages and errors.
struct Run {
    samples: Vec<gst::Sample>,
    resets: Vec<String>,
    errors: Vec<String>,
}

/// Runs `appsrc name=src ! <middle> ! appsink name=sink`, pushing `frames` (caps, pixels; one
/// per 40 ms), with `between(src, index)` called before each frame is pushed.
fn run_appsrc(middle: &str, frames: &[(gst::Caps, Vec<u8>)], between: impl Fn(&AppSrc, usize)) -> Run {
    init();
    let pipeline =
        gst::parse::launch(&format!("appsrc name=src format=time ! {middle} ! appsink name=sink sync=false"))
            .expect("pipeline parses")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
    let src = pipeline.by_name("src").unwrap().downcast::<AppSrc>().unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).expect("pipeline plays");
    let mut samples = Vec::new();
    for (i, (caps, pixels)) in frames.iter().enumerate() {
        between(&src, i);
        src.set_caps(Some(caps));
        let mut buffer = gst::Buffer::from_slice(pixels.clone());
        buffer.get_mut().unwrap().set_pts(gst::ClockTime::from_mseconds(40 * i as u64));
        if src.push_buffer(buffer).is_err() {
            break;
        }
        // One frame in, one out: the element is synchronous.
        match sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
            Some(s) => samples.push(s),
            None => break,
        }
    }
    let _ = src.end_of_stream();
    finish(pipeline, samples)
}

/// Waits for EOS or an error, stops the pipeline and collects its messages.
fn finish(pipeline: gst::Pipeline, samples: Vec<gst::Sample>) -> Run {
    let bus = pipeline.bus().unwrap();
    let (mut resets, mut errors) = (Vec::new(), Vec::new());
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                let s = e.structure().unwrap();
                if s.name() == "sempart-reset" {
                    resets.push(s.get::<String>("reason").unwrap());
                }
            }
            gst::MessageView::Error(e) => {
                errors.push(format!("{} {}", e.error(), e.debug().map(|d| d.to_string()).unwrap_or_default()));
                break;
            }
            gst::MessageView::Eos(_) => break,
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).expect("pipeline stops");
    Run { samples, resets, errors }
}

fn caps(format: VideoFormat, w: u32, h: u32) -> gst::Caps {
    gst_video::VideoCapsBuilder::new().format(format).width(w as i32).height(h as i32).framerate((25, 1).into()).build()
}

/// The tightly packed pixels of an output sample (rows without GStreamer's padding).
fn pixels(sample: &gst::Sample) -> (VideoInfo, Vec<u8>) {
    let info = VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let buffer = sample.buffer().unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).unwrap();
    let row = info.width() as usize * info.format_info().pixel_stride()[0] as usize;
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).unwrap();
    let packed = (0..info.height() as usize).flat_map(|y| data[y * stride..y * stride + row].to_vec()).collect();
    (info, packed)
}

/// Boxes attached to a sample: (x, y, w, h, object).
fn boxes(sample: &gst::Sample) -> Vec<(u32, u32, u32, u32, bool)> {
    sample
        .buffer()
        .unwrap()
        .iter_meta::<VideoRegionOfInterestMeta>()
        .map(|m| {
            assert_eq!(m.roi_type(), "salient-object");
            let (x, y, w, h) = m.rect();
            let object = m.param("sempart").unwrap().get::<bool>("object").unwrap();
            (x, y, w, h, object)
        })
        .collect()
}

/// Rows padded to GStreamer's default stride (a multiple of 4 bytes).
fn padded(rgb: &[u8], w: usize, h: usize, bpp: usize) -> Vec<u8> {
    let stride = (w * bpp).div_ceil(4) * 4;
    let mut out = vec![0u8; stride * h];
    for y in 0..h {
        out[y * stride..y * stride + w * bpp].copy_from_slice(&rgb[y * w * bpp..(y + 1) * w * bpp]);
    }
    out
}

/// A synthetic RGB frame: a bright disc at `cx` over a gradient.
fn disc(w: usize, h: usize, cx: usize) -> Vec<u8> {
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f32 - cx as f32, y as f32 - h as f32 / 2.0);
            let px = if dx * dx + dy * dy < (h as f32 / 4.0).powi(2) {
                [230, 200, 40]
            } else {
                [(x * 2) as u8, (y * 3) as u8, 90]
            };
            rgb[3 * (y * w + x)..3 * (y * w + x) + 3].copy_from_slice(&px);
        }
    }
    rgb
}

#[test]
fn example_images_give_the_masks_and_boxes_of_sempart_segment() {
    let model_path = default_model_path(Precision::Int8);
    assert!(model_path.is_file(), "no default model at {} (run scripts/setup.sh)", model_path.display());
    let model = Segmenter::open(&model_path, &Options::default()).unwrap();
    let cli_masks = std::env::var_os("SEMPART_GST_CLI_MASKS").map(PathBuf::from);
    let mut checked = 0;
    for entry in std::fs::read_dir(repo("examples/images")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("png") {
            continue; // JPEG decoders differ between GStreamer and the SDK: PNG only
        }
        let rgb = load_rgb(&path).unwrap();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let expected =
            model.segment(&Frame::new(rgb.as_raw(), w as u32, h as u32, w * 3, PixelFormat::Rgb8).unwrap()).unwrap();
        let input = padded(rgb.as_raw(), w, h, 3);
        let run = run_appsrc(
            &format!("sempartseg mode=mask model={}", model_path.display()),
            &[(caps(VideoFormat::Rgb, w as u32, h as u32), input)],
            |_, _| {},
        );
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        let (info, mask) = pixels(&run.samples[0]);
        assert_eq!(info.format(), VideoFormat::Gray8);
        assert!(mask == expected.fine_mask, "{}: the element's mask differs from the SDK's", path.display());
        let expected_boxes: Vec<_> = expected
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| (c.x0, c.y0, c.width(), c.height(), expected.object == Some(i)))
            .collect();
        assert_eq!(boxes(&run.samples[0]), expected_boxes, "{}", path.display());
        if let Some(dir) = &cli_masks {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let cli = load_rgb(&dir.join(format!("{stem}.mask.png"))).unwrap();
            let cli: Vec<u8> = cli.pixels().map(|p| p[0]).collect();
            assert!(mask == cli, "{}: the element's mask differs from sempart segment's", path.display());
        }
        checked += 1;
    }
    assert_eq!(checked, 4, "the four PNG example images");
}

#[test]
fn sixty_frames_of_videotestsrc_in_every_format_and_mode() {
    init();
    for (format, mode, out_format) in [
        ("NV12", "roi", VideoFormat::Nv12),
        ("RGB", "mask", VideoFormat::Gray8),
        ("BGRA", "alpha", VideoFormat::Rgba),
        ("GRAY8", "mask", VideoFormat::Gray8),
        ("BGR", "roi", VideoFormat::Bgr),
        ("RGBA", "alpha", VideoFormat::Rgba),
    ] {
        let frames = if format == "NV12" { 60 } else { 5 };
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format={format},width=96,height=72 ! \
             sempartseg model={} mode={mode} ! appsink name=sink sync=false",
            tiny()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sink = pipeline.by_name("sink").unwrap().downcast::<AppSink>().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let mut samples = Vec::new();
        while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
            samples.push(s);
        }
        let run = finish(pipeline, samples);
        assert!(run.errors.is_empty(), "{format} {mode}: {:?}", run.errors);
        assert_eq!(run.samples.len(), frames, "{format} {mode}");
        let (info, _) = pixels(&run.samples[0]);
        assert_eq!((info.format(), info.width(), info.height()), (out_format, 96, 72), "{format} {mode}");
        assert_eq!(run.resets, ["first_frame"], "{format} {mode}: one stream, reset once");
    }
}

#[test]
fn alpha_mode_keeps_the_colours_and_adds_the_mask() {
    let (w, h) = (64, 48);
    let rgb = disc(w, h, 30);
    let input = padded(&rgb, w, h, 3);
    let model = Segmenter::open(tiny(), &Options::default()).unwrap();
    let expected = model.segment(&Frame::new(&rgb, w as u32, h as u32, w * 3, PixelFormat::Rgb8).unwrap()).unwrap();
    let run = run_appsrc(
        &format!("sempartseg model={} mode=alpha", tiny()),
        &[(caps(VideoFormat::Rgb, w as u32, h as u32), input)],
        |_, _| {},
    );
    let (info, rgba) = pixels(&run.samples[0]);
    assert_eq!(info.format(), VideoFormat::Rgba);
    for i in 0..w * h {
        assert_eq!(rgba[4 * i..4 * i + 3], rgb[3 * i..3 * i + 3]);
        assert_eq!(rgba[4 * i + 3], expected.fine_mask[i]);
    }
}

#[test]
fn flush_segment_eos_and_a_new_size_reset_the_stream() {
    let (w, h) = (64, 48);
    let frame =
        |cx: usize, w: usize, h: usize| (caps(VideoFormat::Rgb, w as u32, h as u32), padded(&disc(w, h, cx), w, h, 3));
    let frames =
        [frame(20, w, h), frame(22, w, h), frame(24, w, h), frame(26, w, h), frame(28, 80, 60), frame(30, 80, 60)];
    let run = run_appsrc(&format!("sempartseg model={}", tiny()), &frames, |src, i| {
        if i == 2 {
            // What a flushing seek sends downstream.
            let pad = src.static_pad("src").unwrap();
            assert!(pad.push_event(gst::event::FlushStart::new()));
            assert!(pad.push_event(gst::event::FlushStop::new(true)));
            let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
            segment.set_start(gst::ClockTime::ZERO);
            assert!(pad.push_event(gst::event::Segment::new(&segment)));
        }
    });
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.samples.len(), 6);
    assert_eq!(run.resets, ["first_frame", "requested", "frame_changed"]);
}

#[test]
fn the_stability_property_at_zero_gives_per_frame_masks() {
    let (w, h) = (64, 48);
    let model = Segmenter::open(tiny(), &Options::default()).unwrap();
    let clip: Vec<Vec<u8>> = (0..4).map(|t| disc(w, h, 20 + 3 * t)).collect();
    let frames: Vec<_> =
        clip.iter().map(|rgb| (caps(VideoFormat::Rgb, w as u32, h as u32), padded(rgb, w, h, 3))).collect();
    let run = run_appsrc(&format!("sempartseg model={} mode=mask stability=0", tiny()), &frames, |_, _| {});
    for (sample, rgb) in run.samples.iter().zip(&clip) {
        let expected = model.segment(&Frame::new(rgb, w as u32, h as u32, w * 3, PixelFormat::Rgb8).unwrap()).unwrap();
        assert!(pixels(sample).1 == expected.fine_mask);
    }
    assert_eq!(run.samples.len(), 4);
}

/// Plays `description` and returns its first error message.
fn first_error(description: &str) -> String {
    init();
    let pipeline = gst::parse::launch(description).unwrap().downcast::<gst::Pipeline>().unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let run = finish(pipeline, Vec::new());
    run.errors.into_iter().next().unwrap_or_else(|| panic!("{description}: no error"))
}

#[test]
fn bad_input_is_a_gstreamer_error_not_a_crash() {
    let src = "videotestsrc num-buffers=3 ! video/x-raw,width=64,height=48";
    let e = first_error(&format!("{src} ! sempartseg model=/no/such/model.onnx ! fakesink"));
    assert!(e.contains("cannot open the model /no/such/model.onnx"), "{e}");
    let e = first_error(&format!("{src} ! sempartseg model={} provider=quantum ! fakesink", tiny()));
    assert!(e.contains("provider \"quantum\" is not one of"), "{e}");
    let e = first_error(&format!("{src} ! sempartseg model={} ort-library=/no/libonnxruntime.so ! fakesink", tiny()));
    assert!(e.contains("cannot open the model"), "{e}");
    let e = first_error(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,format=NV12,width=63,height=47 ! sempartseg model={} ! fakesink",
        tiny()
    ));
    assert!(e.contains("width and height must be even"), "{e}");
    // Caps the element does not take: linking fails when the pipeline is parsed.
    init();
    let err =
        gst::parse::launch(&format!("videotestsrc ! video/x-raw,format=I420 ! sempartseg model={} ! fakesink", tiny()))
            .expect_err("I420 is refused");
    assert!(err.to_string().contains("could not link"), "{err}");
    let err = gst::parse::launch("videotestsrc ! sempartseg mode=bogus ! fakesink").expect_err("bad mode is refused");
    assert!(err.to_string().contains("mode"), "{err}");
}

#[test]
fn min_component_fraction_decides_which_boxes_become_metadata() {
    let (w, h) = (96, 64);
    // Dots scattered over the disc's frame give the mask components of many sizes.
    let mut rgb = disc(w, h, 40);
    for i in (0..w * h).filter(|i| (i * 7) % 23 == 0) {
        rgb[3 * i..3 * i + 3].copy_from_slice(&[230, 200, 40]);
    }
    let frames = [(caps(VideoFormat::Rgb, w as u32, h as u32), padded(&rgb, w, h, 3))];
    let count = |fraction: &str| {
        let run =
            run_appsrc(&format!("sempartseg model={} min-component-fraction={fraction}", tiny()), &frames, |_, _| {});
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        boxes(&run.samples[0])
    };
    let (every, only_object) = (count("0"), count("1"));
    assert_eq!(only_object.len(), 1, "at 1 only the object box");
    assert!(only_object[0].4, "and it is flagged as the object");
    assert!(every.len() > 1 && every.contains(&only_object[0]));
}
