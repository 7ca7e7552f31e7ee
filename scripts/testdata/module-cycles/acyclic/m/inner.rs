use super::Helper;

pub struct Thing;

pub fn helper() -> Helper {
    Helper
}
