//! What the socket types implement the same way, written once.
//!
//! Every type keeps its socket in a field `inner`: an `Arc<Conn<Std>>` for a
//! connection-like type (TCP and Unix streams, UDP and Unix datagram
//! sockets), an `Arc<Source<Std>>` for a listener. Both have `get()` (the
//! `std` socket, for calls that never block), so the macros below serve
//! either. They name everything by its full path: a call site needs no
//! imports for them.

/// The read and write timeout methods of a connection-like type, inside its
/// `impl` block. The doc of `set_read_timeout` may be given (as doc comments
/// in the call); the others are the same for every type.
macro_rules! timeout_methods {
    () => {
        timeout_methods! {
            /// Sets the read timeout (`None`: wait for ever).
        }
    };
    ($(#[$set_read_doc:meta])+) => {
        $(#[$set_read_doc])+
        pub fn set_read_timeout(&self, d: Option<::std::time::Duration>) -> ::std::io::Result<()> {
            self.inner.set_read_timeout(d)
        }

        /// The read timeout.
        pub fn read_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
            self.inner.read_timeout()
        }

        /// Sets the write timeout (`None`: wait for ever).
        pub fn set_write_timeout(&self, d: Option<::std::time::Duration>) -> ::std::io::Result<()> {
            self.inner.set_write_timeout(d)
        }

        /// The write timeout.
        pub fn write_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
            self.inner.write_timeout()
        }
    };
}

/// `Read` and `Write` for a stream type and for a shared reference to it
/// (so one clone, or one `&stream`, can read while another writes).
macro_rules! stream_read_write {
    ($green:ty) => {
        impl ::std::io::Read for $green {
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                ::std::io::Read::read(&mut &*self, buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                ::std::io::Read::read_vectored(&mut &*self, bufs)
            }
        }

        impl ::std::io::Read for &$green {
            /// Reads what is there, parking until something is; an empty `buf`
            /// returns `Ok(0)` at once.
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                if buf.is_empty() {
                    return Ok(0);
                }
                self.inner
                    .read_stream(buf.len(), |mut s| ::std::io::Read::read(&mut s, buf))
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                if bufs.iter().all(|b| b.is_empty()) {
                    return Ok(0);
                }
                let len = bufs.iter().map(|b| b.len()).sum();
                self.inner
                    .read_stream(len, |mut s| ::std::io::Read::read_vectored(&mut s, bufs))
            }
        }

        impl ::std::io::Write for $green {
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                ::std::io::Write::write(&mut &*self, buf)
            }

            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                ::std::io::Write::write_vectored(&mut &*self, bufs)
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }

        impl ::std::io::Write for &$green {
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.inner
                    .write_with(|mut s| ::std::io::Write::write(&mut s, buf))
            }

            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                self.inner
                    .write_with(|mut s| ::std::io::Write::write_vectored(&mut s, bufs))
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }
    };
}

/// `AsRawFd`, `AsFd`, `Debug`, and the `From` conversions to and from the
/// `std` type.
///
/// `conn` types wrap a `Conn`, `listener` types a `Source`. `$what` names the
/// socket in the panic messages of the conversions; `$from_doc` is the doc of
/// `From<std>`; the `"name": method` pairs are the fields `Debug` shows after
/// the fd (each method's `Ok` value, or `None`).
macro_rules! socket_impls {
    (
        conn $green:ident, $std:ty, $what:literal, $from_doc:literal
        $(, $field:literal: $getter:ident)* $(,)?
    ) => {
        socket_impls!(
            @common $green, $std, $what, $from_doc, $crate::net::Conn::new
            $(, $field: $getter)*
        );

        impl From<$green> for $std {
            /// Hands the socket back in blocking mode (a duplicate if other clones
            /// still use it).
            fn from(s: $green) -> $std {
                $crate::net::into_blocking(s.inner, |s| s.try_clone())
                    .expect(concat!("cannot hand back a ", $what))
            }
        }
    };
    (
        listener $green:ident, $std:ty, $what:literal, $from_doc:literal
        $(, $field:literal: $getter:ident)* $(,)?
    ) => {
        socket_impls!(
            @common $green, $std, $what, $from_doc, $crate::io::Source::new
            $(, $field: $getter)*
        );

        impl From<$green> for $std {
            /// Hands the listener back in blocking mode (a duplicate if other clones
            /// still use it).
            fn from(l: $green) -> $std {
                let std = match ::std::sync::Arc::try_unwrap(l.inner) {
                    Ok(src) => src.into_inner(),
                    Err(shared) => shared
                        .get()
                        .try_clone()
                        .expect(concat!("cannot duplicate a ", $what)),
                };
                std.set_nonblocking(false)
                    .expect(concat!("cannot make a ", $what, " blocking"));
                std
            }
        }
    };
    (
        @common $green:ident, $std:ty, $what:literal, $from_doc:literal, $new:path
        $(, $field:literal: $getter:ident)*
    ) => {
        impl ::std::os::fd::AsRawFd for $green {
            fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                ::std::os::fd::AsRawFd::as_raw_fd(self.inner.get())
            }
        }

        impl ::std::os::fd::AsFd for $green {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                ::std::os::fd::AsFd::as_fd(self.inner.get())
            }
        }

        impl ::std::fmt::Debug for $green {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($green))
                    .field("fd", &::std::os::fd::AsRawFd::as_raw_fd(self))
                    $(.field($field, &self.$getter().ok()))*
                    .finish()
            }
        }

        impl From<$std> for $green {
            #[doc = $from_doc]
            fn from(s: $std) -> $green {
                $green {
                    inner: ::std::sync::Arc::new(
                        $new(s)
                            .expect(concat!("cannot make a ", $what, " non-blocking")),
                    ),
                }
            }
        }
    };
}
