#ifndef REENCRYPTD_CCURL_EPOLL_H
#define REENCRYPTD_CCURL_EPOLL_H
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <stdint.h>
#include <unistd.h>

// epoll and eventfd for the transport's event loop. Wrapped because the epoll_event union and the EPOLL* enum
// import awkwardly into Swift; these keep the Swift side to plain integers.
static inline int reencryptd_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
static inline int reencryptd_epoll_set(int ep, int fd, int readable, int writable, int add) {
    struct epoll_event ev;
    ev.events = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
    ev.data.u64 = 0;
    ev.data.fd = fd;
    return epoll_ctl(ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
}
static inline int reencryptd_epoll_remove(int ep, int fd) { return epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL); }
/// Waits; fills fds[i] and flags[i] (bit 1: readable, bit 2: writable, bit 4: error) and returns the count.
static inline int reencryptd_epoll_wait(int ep, int *fds, int *flags, int max, int timeout_ms) {
    struct epoll_event events[512];
    if (max > 512) max = 512;
    int n = epoll_wait(ep, events, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        fds[i] = events[i].data.fd;
        flags[i] = ((events[i].events & EPOLLIN) ? 1 : 0) | ((events[i].events & EPOLLOUT) ? 2 : 0)
                 | ((events[i].events & (EPOLLERR | EPOLLHUP)) ? 4 : 0);
    }
    return n;
}
static inline int reencryptd_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
static inline void reencryptd_eventfd_signal(int fd) { uint64_t one = 1; ssize_t r = write(fd, &one, sizeof one); (void)r; }
static inline void reencryptd_eventfd_drain(int fd) { uint64_t v; ssize_t r = read(fd, &v, sizeof v); (void)r; }
#endif
