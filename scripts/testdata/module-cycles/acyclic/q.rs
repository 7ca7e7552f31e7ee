pub struct Q;
