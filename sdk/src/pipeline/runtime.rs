//! ONNX Runtime: finding and loading the library once per process, execution providers, and
//! opening sessions with the provider the caller asked for.

use crate::error::{Error, Result, Status};
use crate::pipeline::refine::GuidedFilter;
use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// File name of the ONNX Runtime library the SDK is built for.
pub const ORT_LIBRARY_NAME: &str = "libonnxruntime.so.1.31.1";
/// Environment variable naming the ONNX Runtime library file to load, overriding the search.
pub const ORT_LIBRARY_ENV: &str = "SEMPART_ORT_LIBRARY";

/// An execution provider. Values are part of the C ABI.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Provider {
    /// NVIDIA TensorRT (needs onnxruntime-gpu, CUDA 13 and TensorRT 10).
    TensorRt = 0,
    /// NVIDIA CUDA (needs onnxruntime-gpu and CUDA 13).
    Cuda = 1,
    /// The CPU, always available.
    Cpu = 2,
}

impl Provider {
    /// The provider with the given ABI value, if any.
    pub fn from_raw(value: u32) -> Option<Provider> {
        [Provider::TensorRt, Provider::Cuda, Provider::Cpu].get(value as usize).copied()
    }

    /// Short lowercase name: `tensorrt`, `cuda`, `cpu`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::TensorRt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
        }
    }

    /// Parses a short name as [`Provider::name`] writes it.
    pub fn parse(name: &str) -> Option<Provider> {
        match name.to_ascii_lowercase().as_str() {
            "tensorrt" | "trt" => Some(Provider::TensorRt),
            "cuda" => Some(Provider::Cuda),
            "cpu" => Some(Provider::Cpu),
            _ => None,
        }
    }
}

/// How to run a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Providers in order of preference. Empty means `[Cpu]`.
    pub providers: Vec<Provider>,
    /// When a provider cannot be used, try the next one (and finally the CPU). When false, the
    /// first provider must work or opening the model fails with
    /// [`Status::ProviderUnavailable`].
    pub allow_fallback: bool,
    /// Threads ONNX Runtime may use on the CPU within one inference; 0 lets it choose.
    pub cpu_threads: usize,
    /// GPU device index for CUDA and TensorRT.
    pub device_id: i32,
    /// Let TensorRT build fp16 engines.
    pub tensorrt_fp16: bool,
    /// Folder where TensorRT keeps built engines between runs (created if missing).
    pub tensorrt_engine_cache_dir: Option<PathBuf>,
    /// The ONNX Runtime library to load; `None` searches (see [`ort_library_candidates`]).
    pub ort_library: Option<PathBuf>,
    /// Edge-aware refinement of the fine map with the frame as the guide
    /// ([`crate::pipeline::refine`]); [`GuidedFilter::OFF`] gives the paper's plain bilinear resize.
    pub refine: GuidedFilter,
    /// Write ONNX Runtime's per-operator profile (a JSON trace) to a file starting with this
    /// path, for performance work (`sempart bench --profile`). Rust API only.
    pub profile: Option<PathBuf>,
    /// Components of the fine mask smaller than this share of the frame's area are left out of
    /// the result's box list (the mask keeps them; the object box is always listed, so it and
    /// CorLoc do not depend on it). `0..=1`; 0 lists every component. Default
    /// [`DEFAULT_MIN_COMPONENT_FRACTION`].
    pub min_component_fraction: f32,
    /// Check the model file's content digest when opening it (format version 2 files; a
    /// mismatch gives [`Status::ModelIntegrity`]). Turn it off only when the file was
    /// verified elsewhere.
    pub verify_integrity: bool,
}

/// The most CPU threads one session may be given ([`Options::cpu_threads`]). ONNX Runtime
/// builds one thread pool per session; thousands of threads take seconds to minutes and
/// gigabytes to start, and no machine this SDK targets gains from more than this.
pub const MAX_CPU_THREADS: usize = 256;
/// The default [`Options::min_component_fraction`]: 1/2000 of the frame (154 pixels of a 640x480
/// frame, 1,037 of 1920x1080), chosen on the example images (docs/CAMERA.md, "Boxes").
pub const DEFAULT_MIN_COMPONENT_FRACTION: f32 = 0.0005;

/// Checks a [`Options::min_component_fraction`].
pub fn check_min_component_fraction(fraction: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(Error::invalid(format!("min_component_fraction is {fraction}, expected 0 to 1")));
    }
    Ok(())
}

/// The largest GPU index accepted ([`Options::device_id`]).
pub const MAX_DEVICE_ID: i32 = 255;

impl Options {
    /// The precision of default model that suits these providers: int8 when the CPU comes
    /// first (ONNX Runtime's integer kernels are about twice as fast there), float32 when a
    /// GPU provider does (TensorRT and CUDA run the float graph, TensorRT in fp16 if asked).
    pub fn default_precision(&self) -> crate::model::format::Precision {
        match self.providers.first() {
            None | Some(Provider::Cpu) => crate::model::format::Precision::Int8,
            Some(_) => crate::model::format::Precision::Fp32,
        }
    }

    /// Checks every numeric option against its documented range.
    pub fn validate(&self) -> Result<()> {
        if self.cpu_threads > MAX_CPU_THREADS {
            return Err(Error::invalid(format!(
                "cpu_threads is {}, expected 0 (ONNX Runtime chooses) to {MAX_CPU_THREADS}",
                self.cpu_threads
            )));
        }
        if !(0..=MAX_DEVICE_ID).contains(&self.device_id) {
            return Err(Error::invalid(format!("device_id is {}, expected 0 to {MAX_DEVICE_ID}", self.device_id)));
        }
        check_min_component_fraction(self.min_component_fraction)?;
        self.refine.validate()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            providers: vec![Provider::Cpu],
            allow_fallback: true,
            cpu_threads: 0,
            device_id: 0,
            tensorrt_fp16: false,
            tensorrt_engine_cache_dir: None,
            ort_library: None,
            refine: GuidedFilter::DEFAULT,
            min_component_fraction: DEFAULT_MIN_COMPONENT_FRACTION,
            verify_integrity: true,
            profile: None,
        }
    }
}

/// Where the SDK looks for the ONNX Runtime library, in order: `$SEMPART_ORT_LIBRARY`; next to
/// the binary or shared library that contains the SDK (and in `../lib` from there); the
/// `.deps/onnxruntime/` folder of the source tree this SDK was built from.
pub fn ort_library_candidates() -> Result<Vec<PathBuf>> {
    if let Some(p) = std::env::var_os(ORT_LIBRARY_ENV) {
        // An explicit choice is never silently skipped.
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(Error::new(
                Status::RuntimeUnavailable,
                format!("{ORT_LIBRARY_ENV} names {}, which does not exist", p.display()),
            ));
        }
        return Ok(vec![p]);
    }
    let mut out = Vec::new();
    if let Some(dir) = own_object_dir() {
        out.push(dir.join(ORT_LIBRARY_NAME));
        out.push(dir.join("../lib").join(ORT_LIBRARY_NAME));
    }
    out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.deps/onnxruntime").join(ORT_LIBRARY_NAME));
    Ok(out)
}

/// The folder of the binary or shared object this code is linked into.
fn own_object_dir() -> Option<PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let addr = own_object_dir as *const libc::c_void;
    // SAFETY: dladdr only reads the address and fills `info`; the returned name is a C string
    // owned by the dynamic loader that stays valid while the object is loaded.
    let found = unsafe { libc::dladdr(addr, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(name.to_str().ok()?);
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    path.parent().map(Path::to_path_buf)
}

static ENVIRONMENT: Mutex<Option<(PathBuf, &'static Environment)>> = Mutex::new(None);

/// Loads ONNX Runtime (once per process; a failed attempt is not remembered, so a later call
/// with a correct path succeeds) and returns its environment.
pub fn environment(requested: Option<&Path>) -> Result<&'static Environment> {
    let mut loaded = ENVIRONMENT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((path, env)) = loaded.as_ref() {
        if let Some(req) = requested {
            if std::fs::canonicalize(req).ok() != std::fs::canonicalize(path).ok() {
                return Err(Error::new(
                    Status::RuntimeUnavailable,
                    format!(
                        "ONNX Runtime is already loaded from {} in this process; cannot load {} too",
                        path.display(),
                        req.display()
                    ),
                ));
            }
        }
        return Ok(env);
    }
    let path = match requested {
        Some(p) => p.to_path_buf(),
        None => {
            let candidates = ort_library_candidates()?;
            let Some(found) = candidates.iter().find(|p| p.is_file()) else {
                let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
                return Err(Error::new(
                    Status::RuntimeUnavailable,
                    format!(
                        "ONNX Runtime ({ORT_LIBRARY_NAME}) not found; looked at: {}; run scripts/setup.sh or set {ORT_LIBRARY_ENV}",
                        tried.join(", ")
                    ),
                ));
            };
            found.clone()
        }
    };
    if !path.is_file() {
        return Err(Error::new(
            Status::RuntimeUnavailable,
            format!("ONNX Runtime library {} does not exist", path.display()),
        ));
    }
    let builder = ort::init_from(&path).map_err(|e| {
        Error::new(Status::RuntimeUnavailable, format!("cannot load ONNX Runtime from {}: {e}", path.display()))
    })?;
    let env = builder
        .with_name("sempart")
        .with_telemetry(false)
        .build()
        .map_err(|e| Error::new(Status::RuntimeUnavailable, format!("cannot start ONNX Runtime: {e}")))?;
    // The environment lives as long as the process, like the library it came from.
    let env: &'static Environment = Box::leak(Box::new(env));
    *loaded = Some((path, env));
    Ok(env)
}

/// Providers the loaded ONNX Runtime library was built with (CPU always).
pub fn available_providers(options: &Options) -> Result<Vec<Provider>> {
    environment(options.ort_library.as_deref())?;
    let mut out = Vec::new();
    if ep::TensorRT::is_available().unwrap_or(false) {
        out.push(Provider::TensorRt);
    }
    if ep::CUDA::is_available().unwrap_or(false) {
        out.push(Provider::Cuda);
    }
    out.push(Provider::Cpu);
    Ok(out)
}

fn dispatch(provider: Provider, options: &Options) -> Result<Option<ep::ExecutionProviderDispatch>> {
    Ok(match provider {
        Provider::Cpu => None,
        Provider::Cuda => Some(ep::CUDA::default().with_device_id(options.device_id).build().error_on_failure()),
        Provider::TensorRt => {
            let mut trt = ep::TensorRT::default().with_device_id(options.device_id).with_fp16(options.tensorrt_fp16);
            if let Some(dir) = &options.tensorrt_engine_cache_dir {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::invalid(format!("cannot create TensorRT engine cache folder {}: {e}", dir.display()))
                })?;
                trt = trt.with_engine_cache(true).with_engine_cache_path(dir.display().to_string());
            }
            Some(trt.build().error_on_failure())
        }
    })
}

fn open_with(bytes: &[u8], provider: Provider, options: &Options) -> Result<Session> {
    let env = environment(options.ort_library.as_deref())?;
    let unavailable = |e: String| {
        Error::new(Status::ProviderUnavailable, format!("execution provider {} is not usable: {e}", provider.name()))
    };
    let internal = |e: ort::Error| Error::new(Status::Internal, format!("configuring ONNX Runtime: {e}"));
    let mut builder = Session::builder(env)
        .map_err(internal)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| internal(e.into()))?
        .with_intra_op_spinning(false)
        .map_err(|e| internal(e.into()))?;
    if let Some(prefix) = &options.profile {
        builder = builder.with_profiling(prefix).map_err(|e| internal(e.into()))?;
    }
    if options.cpu_threads > 0 {
        builder = builder.with_intra_threads(options.cpu_threads).map_err(|e| internal(e.into()))?;
    }
    if let Some(ep) = dispatch(provider, options)? {
        builder = builder.with_execution_providers([ep]).map_err(|e| unavailable(e.to_string()))?;
    }
    builder.commit_from_memory(bytes).map_err(|e| {
        let text = e.to_string();
        if provider != Provider::Cpu {
            unavailable(text)
        } else {
            Error::new(Status::ModelCorrupt, format!("ONNX Runtime refused the model: {text}"))
        }
    })
}

/// Opens a session on the first provider of `options.providers` that works (only the first,
/// unless fallback is allowed). Returns the session and the provider in use.
pub fn open_session(bytes: &[u8], options: &Options) -> Result<(Session, Provider)> {
    let mut order = if options.providers.is_empty() { vec![Provider::Cpu] } else { options.providers.clone() };
    if options.allow_fallback && !order.contains(&Provider::Cpu) {
        order.push(Provider::Cpu);
    }
    let mut failures = Vec::new();
    for (i, &provider) in order.iter().enumerate() {
        match open_with(bytes, provider, options) {
            Ok(session) => return Ok((session, provider)),
            Err(e) if e.status() == Status::ProviderUnavailable => {
                if !options.allow_fallback || i + 1 == order.len() {
                    let mut msg = failures.join("; ");
                    if !msg.is_empty() {
                        msg.push_str("; ");
                    }
                    msg.push_str(e.message());
                    if !options.allow_fallback {
                        msg.push_str(" (fallback not allowed)");
                    }
                    return Err(Error::new(Status::ProviderUnavailable, msg));
                }
                failures.push(e.message().to_string());
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::new(Status::ProviderUnavailable, "no execution provider could be used"))
}

/// An ONNX Runtime session run one call at a time (ONNX Runtime already uses every CPU thread
/// it was given for one run): a Sempart model's, or a peer's ([`crate::eval::peer`]).
pub struct ModelSession {
    session: Mutex<Session>,
}

impl ModelSession {
    /// Wraps an open session (see [`open_session`]).
    pub fn new(session: Session) -> ModelSession {
        ModelSession { session: Mutex::new(session) }
    }

    /// Runs the graph on one float input (`name`, `shape`, row-major `data`) and returns the
    /// named float outputs, each with its shape, in the order asked. Runs are serialised (one
    /// at a time per session).
    pub fn run_named(
        &self,
        name: &str,
        shape: &[usize],
        data: &[f32],
        outputs: &[&str],
    ) -> Result<Vec<(Vec<i64>, Vec<f32>)>> {
        let failed = |e: ort::Error| Error::new(Status::InferenceFailed, format!("inference failed: {e}"));
        let tensor = TensorRef::from_array_view((shape.to_vec(), data)).map_err(failed)?;
        let mut session = self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let values = session.run(ort::inputs![name => tensor]).map_err(failed)?;
        outputs
            .iter()
            .map(|&out| {
                let value = values.get(out).ok_or_else(|| {
                    Error::new(Status::InferenceFailed, format!("the model produced no '{out}' output"))
                })?;
                let (dims, data) = value.try_extract_tensor::<f32>().map_err(failed)?;
                Ok((dims.iter().copied().collect(), data.to_vec()))
            })
            .collect()
    }

    /// Runs a Sempart graph on a prepared input `[N, 3, H, W]`; returns the flat `fine` and
    /// `coarse` outputs.
    pub fn run(&self, shape: &[usize; 4], input: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        use crate::model::format::{COARSE_OUTPUT, FINE_OUTPUT, INPUT_NAME};
        let mut out = self.run_named(INPUT_NAME, shape, input, &[FINE_OUTPUT, COARSE_OUTPUT])?;
        match (out.pop(), out.pop()) {
            (Some((_, coarse)), Some((_, fine))) => Ok((fine, coarse)),
            _ => Err(Error::new(Status::Internal, "the run returned fewer outputs than asked")),
        }
    }
}
