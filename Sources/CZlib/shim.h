#ifndef REENCRYPTD_CZLIB_SHIM_H
#define REENCRYPTD_CZLIB_SHIM_H
#include <zlib.h>

// inflateInit2 is a macro over inflateInit2_ with the version and struct size: Swift cannot call macros.
static inline int reencryptd_inflate_init_gzip(z_stream *stream) {
    // 15 window bits + 32: detect gzip or zlib headers automatically.
    return inflateInit2(stream, 15 + 32);
}
#endif
