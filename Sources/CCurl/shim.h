#ifndef REENCRYPTD_CCURL_SHIM_H
#define REENCRYPTD_CCURL_SHIM_H
#include <sys/prctl.h>
#include <curl/curl.h>

// curl_easy_setopt, curl_multi_setopt and curl_easy_getinfo are variadic: Swift cannot call them.
// One wrapper per argument type. https://curl.se/libcurl/c/curl_easy_setopt.html
static inline CURLcode reencryptd_easy_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode reencryptd_easy_setopt_ptr(CURL *h, CURLoption o, const void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode reencryptd_easy_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode reencryptd_easy_setopt_write(CURL *h, size_t (*f)(char *, size_t, size_t, void *)) {
    return curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, f);
}
static inline CURLcode reencryptd_easy_setopt_header(CURL *h, size_t (*f)(char *, size_t, size_t, void *)) {
    return curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, f);
}
static inline CURLcode reencryptd_easy_setopt_read(CURL *h, size_t (*f)(char *, size_t, size_t, void *)) {
    return curl_easy_setopt(h, CURLOPT_READFUNCTION, f);
}
static inline CURLcode reencryptd_easy_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode reencryptd_easy_getinfo_ptr(CURL *h, CURLINFO i, char **v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode reencryptd_easy_getinfo_double(CURL *h, CURLINFO i, double *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLMcode reencryptd_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }

// CURLMsg carries a union; reading `data.result` from Swift is awkward, so flatten it.
static inline CURL *reencryptd_multi_info_read(CURLM *m, CURLcode *result, int *done) {
    int left = 0;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) { *result = msg->data.result; *done = 1; return msg->easy_handle; }
    }
    *done = 0;
    return NULL;
}

// The event-driven interface (curl_multi_socket_action) for thousands of transfers: libcurl tells us which sockets
// to watch (socket callback) and when to call back (timer callback); we watch them with epoll.
// https://curl.se/libcurl/c/curl_multi_socket_action.html , https://curl.se/libcurl/c/CURLMOPT_SOCKETFUNCTION.html
typedef int (*reencryptd_socket_cb)(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
typedef int (*reencryptd_timer_cb)(CURLM *multi, long timeout_ms, void *userp);
static inline CURLMcode reencryptd_multi_setopt_socketfunction(CURLM *m, reencryptd_socket_cb f) {
    return curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, f);
}
static inline CURLMcode reencryptd_multi_setopt_timerfunction(CURLM *m, reencryptd_timer_cb f) {
    return curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, f);
}
// Own socket open and close, so the transport knows which descriptors are connections (CurlTransport.watch).
typedef curl_socket_t (*reencryptd_opensocket_cb)(void *clientp, curlsocktype purpose, struct curl_sockaddr *address);
typedef int (*reencryptd_closesocket_cb)(void *clientp, curl_socket_t item);
static inline CURLcode reencryptd_easy_setopt_opensocket(CURL *h, reencryptd_opensocket_cb f) {
    return curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, f);
}
static inline CURLcode reencryptd_easy_setopt_closesocket(CURL *h, reencryptd_closesocket_cb f) {
    return curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, f);
}
static inline CURLMcode reencryptd_multi_setopt_ptr(CURLM *m, CURLMoption o, void *p) { return curl_multi_setopt(m, o, p); }
// Names the calling thread as `top -H`, `ps -L` and perf show it (15 bytes at most); prctl is variadic, so Swift
// cannot call it directly. https://man7.org/linux/man-pages/man2/PR_SET_NAME.2const.html
static inline void reencryptd_name_thread(const char *name) { prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }
#endif
