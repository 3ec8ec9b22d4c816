//! A request head as the fuzz targets take it: a request line, then `Name: value` lines (at most
//! 64), parsed as hyper would take them; `None` when hyper would have refused them already.

/// The request the head describes, without a body.
pub fn request(head: &str) -> Option<hyper::Request<()>> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next()?;
    let mut parts = request_line.splitn(3, ' ');
    let (method, target) = (parts.next()?, parts.next()?);
    let mut builder = hyper::Request::builder().method(method).uri(target);
    for line in lines.take(64) {
        if let Some((name, value)) = line.split_once(':') {
            builder = builder.header(name.trim(), value.trim());
        }
    }
    builder.body(()).ok()
}
