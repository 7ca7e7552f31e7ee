//! Measuring: [`metrics`] (the one implementation of Acc / IoU / maxF / CorLoc, shared with the
//! trainer), [`evaluate`] (the procedure of `sempart eval`) and [`peer`] (another ONNX model timed
//! like the SDK, for `sempart bench --peer`) and [`video`] (J and flicker of video sequences, per frame and
//! as streams, for `sempart eval-video`). Above the pipeline; nothing in the pipeline uses it.

pub mod evaluate;
pub mod metrics;
pub mod peer;
pub mod video;
