//! A borrowed single-channel map with its size: how probability maps and masks are handed
//! between post-processing, refinement and scoring without a width and a height travelling
//! beside every slice.
#![warn(missing_docs)]

/// `width x height` values, row-major (`index = y * width + x`), borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plane<'a, T> {
    values: &'a [T],
    width: usize,
    height: usize,
}

impl<'a, T> Plane<'a, T> {
    /// The map `values` of `width x height`.
    ///
    /// # Panics
    /// When `values.len() != width * height`: a caller that pairs a slice with the wrong size
    /// has a bug that no result could hide.
    pub fn new(values: &'a [T], width: usize, height: usize) -> Self {
        assert_eq!(
            Some(values.len()),
            width.checked_mul(height),
            "Plane::new: {} values do not make a {width}x{height} map",
            values.len()
        );
        Self { values, width, height }
    }

    /// The values, row-major.
    pub fn values(&self) -> &'a [T] {
        self.values
    }

    /// Width in values.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in values.
    pub fn height(&self) -> usize {
        self.height
    }

    /// (width, height).
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::Plane;

    #[test]
    fn a_plane_keeps_its_values_and_size() {
        let v = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let p = Plane::new(&v, 3, 2);
        assert_eq!((p.width(), p.height(), p.size()), (3, 2, (3, 2)));
        assert_eq!(p.values()[4], 5.0);
    }

    #[test]
    #[should_panic(expected = "6 values do not make a 4x2 map")]
    fn a_wrong_size_is_refused() {
        let v = [0u8; 6];
        let _ = Plane::new(&v, 4, 2);
    }

    #[test]
    #[should_panic(expected = "do not make")]
    fn an_overflowing_size_is_refused() {
        let v = [0u8; 1];
        let _ = Plane::new(&v, usize::MAX, 2);
    }
}
