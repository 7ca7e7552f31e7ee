//! The element's settings: its properties, their defaults, and the SDK options they ask for.

use super::mode::Mode;
use gst::glib;
use gst::prelude::*;
use sempart::pipeline::runtime::{DEFAULT_MIN_COMPONENT_FRACTION, MAX_CPU_THREADS};
use sempart::{GuidedFilter, Options, Provider, StreamOptions};
use std::path::PathBuf;
use std::sync::LazyLock;

#[derive(Debug, Clone)]
pub struct Settings {
    pub model: Option<String>,
    pub provider: String,
    pub threads: u32,
    pub refine: bool,
    pub stability: f32,
    pub ort_library: Option<String>,
    pub min_component_fraction: f32,
    pub mode: Mode,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            provider: "cpu".into(),
            threads: 0,
            refine: true,
            stability: StreamOptions::DEFAULT.strength,
            ort_library: None,
            min_component_fraction: DEFAULT_MIN_COMPONENT_FRACTION,
            mode: Mode::Roi,
        }
    }
}

impl Settings {
    /// The element's properties, one per field.
    pub fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model file")
                    .blurb("The Sempart model file (default: $SEMPART_MODEL, else the default model of the precision that suits the provider)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("provider")
                    .nick("Execution providers")
                    .blurb("ONNX Runtime providers in order of preference, comma-separated: tensorrt, cuda, cpu (falls back to the next, finally the CPU)")
                    .default_value(Some(d.provider.as_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("CPU threads")
                    .blurb("Threads ONNX Runtime may use on the CPU within one frame; 0 lets it choose")
                    .maximum(MAX_CPU_THREADS as u32)
                    .default_value(d.threads)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("refine")
                    .nick("Edge-aware refinement")
                    .blurb("Refine the mask along the frame's edges (the SDK's default guided filter); false gives the plain resize")
                    .default_value(d.refine)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("stability")
                    .nick("Temporal stability")
                    .blurb("Strength of the stream's smoothing over time, 0 (per-frame masks) to below 1")
                    .minimum(0.0)
                    .maximum(0.99)
                    .default_value(d.stability)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("ort-library")
                    .nick("ONNX Runtime library")
                    .blurb("Path of libonnxruntime (default: found as the C library finds it: $SEMPART_ORT_LIBRARY, beside the library, the build's .deps/onnxruntime)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("min-component-fraction")
                    .nick("Smallest box")
                    .blurb("Components smaller than this share of the frame get no region-of-interest meta (the mask keeps them; the object box is always attached); 0 attaches every component")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.min_component_fraction)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("mode", d.mode)
                    .nick("Output")
                    .blurb("roi: the frames with the boxes as metadata; mask: the mask as GRAY8; alpha: the frame as RGBA with the mask as alpha")
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    /// Sets the property `name` (GObject has checked the value's type and range).
    pub fn set(&mut self, name: &str, value: &glib::Value) {
        let s = self;
        match name {
            "model" => s.model = value.get().expect("type checked upstream"),
            "provider" => {
                s.provider = value.get::<Option<String>>().expect("type checked upstream").unwrap_or_default()
            }
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "refine" => s.refine = value.get().expect("type checked upstream"),
            "stability" => s.stability = value.get().expect("type checked upstream"),
            "ort-library" => s.ort_library = value.get().expect("type checked upstream"),
            "min-component-fraction" => s.min_component_fraction = value.get().expect("type checked upstream"),
            "mode" => s.mode = value.get().expect("type checked upstream"),
            other => unreachable!("no property {other}"),
        }
    }

    /// The value of the property `name`.
    pub fn get(&self, name: &str) -> glib::Value {
        let s = self;
        match name {
            "model" => s.model.to_value(),
            "provider" => s.provider.to_value(),
            "threads" => s.threads.to_value(),
            "refine" => s.refine.to_value(),
            "stability" => s.stability.to_value(),
            "ort-library" => s.ort_library.to_value(),
            "min-component-fraction" => s.min_component_fraction.to_value(),
            "mode" => s.mode.to_value(),
            other => unreachable!("no property {other}"),
        }
    }

    /// The SDK options these settings ask for, checked.
    pub fn options(&self) -> Result<Options, String> {
        let providers = self
            .provider
            .split(',')
            .map(|name| {
                Provider::parse(name.trim())
                    .ok_or_else(|| format!("provider {:?} is not one of cpu, cuda, tensorrt", name.trim()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let options = Options {
            providers,
            cpu_threads: self.threads as usize,
            ort_library: self.ort_library.as_ref().map(PathBuf::from),
            refine: if self.refine { GuidedFilter::DEFAULT } else { GuidedFilter::OFF },
            min_component_fraction: self.min_component_fraction,
            ..Options::default()
        };
        options.validate().map_err(|e| e.to_string())?;
        Ok(options)
    }
}
