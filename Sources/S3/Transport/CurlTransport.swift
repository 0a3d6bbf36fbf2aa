import CCurl
import Foundation

/// What came back for one request: an HTTP response, or a failure before one arrived.
public enum TransportResult: Sendable {
    case response(HTTPResponse)
    /// Connection refused or reset, timeout, DNS or TLS failure: `code` is libcurl's CURLcode.
    case failure(code: Int32, message: String)
}

public struct HTTPResponse: Sendable {
    public var status: Int
    /// The header lines as received (`Name: value\r\n` each), read on demand: most answers are consulted for one
    /// header or none, and a String pair per header per answer was a visible share of the client's allocations.
    var rawHeaders: [UInt8]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        rawHeaders = Array(headers.map { "\($0.name): \($0.value)\r\n" }.joined().utf8)
        self.body = body
    }

    init(status: Int, rawHeaders: [UInt8], body: [UInt8]) {
        self.status = status
        self.rawHeaders = rawHeaders
        self.body = body
    }

    /// Every header, in order.
    public var headers: [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        forEachHeader { name, value in
            out.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
            return true
        }
        return out
    }

    /// The first header named `name` (ASCII case-insensitive; give `name` in lowercase).
    public func header(_ name: String) -> String? {
        var found: String?
        let wanted = Array(name.utf8)
        forEachHeader { n, value in
            guard n.count == wanted.count else { return true }
            for (a, b) in zip(n, wanted) where ASCII.lowercased(a) != b { return true }
            found = String(decoding: value, as: UTF8.self)
            return false
        }
        return found
    }

    /// Calls `body` with each header's name and trimmed value until it returns false.
    private func forEachHeader(_ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) -> Bool) {
        rawHeaders.withUnsafeBufferPointer { p in
            var start = 0
            while start < p.count {
                var end = start
                while end < p.count, p[end] != 0x0A { end += 1 }
                var lineEnd = end
                while lineEnd > start, p[lineEnd - 1] == 0x0D || p[lineEnd - 1] == 0x20 || p[lineEnd - 1] == 0x09 { lineEnd -= 1 }
                var colon = start
                while colon < lineEnd, p[colon] != 0x3A { colon += 1 }
                if colon < lineEnd {
                    var v = colon + 1
                    while v < lineEnd, p[v] == 0x20 || p[v] == 0x09 { v += 1 }
                    if !body(UnsafeBufferPointer(rebasing: p[start..<colon]), UnsafeBufferPointer(rebasing: p[v..<lineEnd])) { return }
                }
                start = end + 1
            }
        }
    }
}

/// Transport settings. Defaults suit S3: short connect timeout, bounded whole-request time.
public struct TransportConfiguration: Sendable {
    /// Seconds to establish a connection. Default 5.
    public var connectTimeout: Double = 5
    /// Seconds for a whole request. Default 30.
    public var requestTimeout: Double = 30
    /// Connections per host; transfers beyond it queue inside libcurl. Default 512.
    /// https://curl.se/libcurl/c/CURLMOPT_MAX_HOST_CONNECTIONS.html
    public var maxHostConnections = 512
    /// A PEM bundle to trust for https instead of the system store (`AWS_CA_BUNDLE`). Default none.
    public var caBundle: String?
    /// Driver threads, each with its own multi handle and connections; requests are spread over them. Default 2:
    /// libcurl's own work per request is the largest share of the client's, and one thread of it capped the rate a
    /// two-core machine reaches. `maxHostConnections` is the total across them.
    public var drivers = 2
    /// Whether plain-http requests go through a forward proxy; nil: as the environment says (tests set it).
    var plainHTTPProxied: Bool?

    public init() {}
}

/// libcurl's multi interface on one driver thread, event-driven: `curl_multi_socket_action` with our own epoll, so
/// each pass touches only the sockets that are ready (`curl_multi_perform` checks every transfer on every call, which
/// costs O(transfers) per completion). Thousands of transfers in flight, connections kept alive in the caches of a few
/// multi handles (`ConnectionPool`), completions delivered by callback on the driver thread. Each completion must be
/// short; work on a whole batch of them belongs in `afterCompletions`, once per pass, or on another thread.
/// No thread is blocked per request.
/// https://curl.se/libcurl/c/curl_multi_socket_action.html ; https://curl.se/libcurl/c/libcurl-thread.html
public final class CurlTransport: @unchecked Sendable {
    public typealias Completion = @Sendable (TransportResult) -> Void

    /// The driver's multi handles, each with its own connections (see `ConnectionPool`).
    private var pools: [ConnectionPool] = []
    private let configuration: TransportConfiguration
    /// Whether the environment names a forward proxy for plain http (see `EasyHandle`): libcurl 7.88 reads
    /// `http_proxy` (lowercase only, for safety in CGI settings), then `all_proxy` and `ALL_PROXY`.
    /// https://curl.se/libcurl/c/CURLOPT_PROXY.html
    private let plainHTTPProxied: Bool
    /// Whether any proxy variable is set. If none is, handles say "no proxy" outright: left to itself, libcurl 7.88
    /// looks the variables up again (getenv, copies) for every request to reach the same answer.
    private let environmentNamesAProxy: Bool
    private let epoll: Int32
    private let wakeFD: Int32
    // Submissions cross threads through `lock`; everything else is touched by the driver thread only.
    // That discipline is what makes @unchecked Sendable sound.
    private let lock = NSLock()
    private var submitted: [Transfer] = []
    private var stopping = false
    /// The driver is in epoll_wait: `idle` with nothing in flight (its wait may be long), and whether a wake-up
    /// has been sent since it began waiting (one is enough).
    private var waiting = false
    private var waitingIdle = false
    private var wakePending = false
    private var activeCount = 0
    private let stopped = DispatchSemaphore(value: 0)
    // Driver-thread state.
    /// Easy handles between transfers (see `EasyHandle`).
    private var idleHandles: [EasyHandle] = []
    private var transfers: [UnsafeMutableRawPointer: Transfer] = [:]
    /// Which pool each new transfer goes to (driver thread only).
    private var poolChoice = PoolChoice()
    /// The handles one round found finished, with their results (kept to reuse its storage).
    private var finished: [(easy: UnsafeMutableRawPointer, result: CURLcode)] = []
    /// What each socket is registered for in epoll (bit 1 readable, bit 2 writable), whether libcurl still wants it
    /// watched (see `watch`), and the pool whose multi handle asked for it.
    private var registered: [Int32: (mask: Int32, parked: Bool, pool: Int)] = [:]
    /// The sockets libcurl opened for connections (through `curlOpenSocket`), until it closes them (`curlCloseSocket`).
    fileprivate var connectionSockets: Set<Int32> = []

    /// epoll registrations added, changed or removed so far (tests check that kept-alive requests need none).
    var epollChanges: Int { lock.withLock { epollChangeCount } }
    private var epollChangeCount = 0
    /// Connection sockets opened so far (tests check the cap across pools, and reuse).
    var connectionsOpened: Int { lock.withLock { connectionsOpenedCount } }
    private var connectionsOpenedCount = 0

    /// Transfers in flight or queued (for metrics).
    public var inFlight: Int { lock.withLock { activeCount } }
    /// This transport's connection cap (its share when a client runs several).
    var connectionCap: Int { configuration.maxHostConnections }

    public typealias RoundHandler = @Sendable () -> Void
    /// Run after each pass of the driver loop in which completions ran (under `lock`; read once per pass).
    private var roundHandler: RoundHandler?
    /// Completions run in the current pass (driver thread only).
    private var completionsThisPass = 0

    /// Marks each driver thread with its transport (see `isCurrentDriver`).
    private static let driverKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Whether the calling thread is a driver thread (of any transport).
    public static var onDriverThread: Bool { pthread_getspecific(driverKey) != nil }

    /// Whether the calling thread is this transport's driver: what it submits is started on the driver's next pass,
    /// before the driver waits again, with no wake-up.
    public var isCurrentDriver: Bool { pthread_getspecific(Self.driverKey) == Unmanaged.passUnretained(self).toOpaque() }

    /// Runs `handler` on the driver thread after each pass of its loop that ran completions, once they have all run.
    /// A caller that collects completions can act on the whole batch there, on the thread that has it, instead of
    /// handing it to another thread (a wake-up and a context switch per batch, and the batch's memory crossing cores).
    /// The handler may submit (it runs outside the transport's lock); work it submits here starts on the next pass.
    public func afterCompletions(_ handler: RoundHandler?) {
        lock.withLock { roundHandler = handler }
    }

    private static let globalInit: Void = {
        // Once per process, before any thread uses curl; and SIGPIPE must not kill us when a peer resets.
        curl_global_init(Int(CURL_GLOBAL_ALL))
        signal(SIGPIPE, SIG_IGN)
    }()

    public init(configuration: TransportConfiguration = TransportConfiguration()) throws {
        _ = Self.globalInit
        let ep = reencryptd_epoll_create()
        let wake = reencryptd_eventfd()
        guard ep >= 0, wake >= 0, reencryptd_epoll_set(ep, wake, 1, 0, 1) == 0 else {
            let reason = String(cString: strerror(errno))
            if ep >= 0 { close(ep) }
            if wake >= 0 { close(wake) }
            throw S3ClientError.transport("cannot create the transport's epoll/eventfd: \(reason)")
        }
        self.configuration = configuration
        func isSet(_ name: String) -> Bool { getenv(name).map { $0.pointee != 0 } ?? false }
        plainHTTPProxied = configuration.plainHTTPProxied ?? ["http_proxy", "all_proxy", "ALL_PROXY"].contains(where: isSet)
        environmentNamesAProxy = plainHTTPProxied
            || ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"].contains(where: isSet)
        epoll = ep
        wakeFD = wake
        let count = ConnectionPool.count(forConnections: configuration.maxHostConnections)
        for index in 0..<count {
            let share = Self.share(of: configuration.maxHostConnections, part: index, parts: count)
            guard let pool = ConnectionPool(index: index, transport: self, maxHostConnections: share) else {
                pools.forEach { curl_multi_cleanup($0.multi) }
                close(ep)
                close(wake)
                throw S3ClientError.transport("curl_multi_init failed")
            }
            pools.append(pool)
        }
        let thread = Thread { [unowned self] in
            // Named from inside: on Linux, Foundation's `Thread.name` set before start did not reach the kernel, and
            // `top -H` showed the transport threads under the name of the dispatch worker that created them.
            reencryptd_name_thread(Self.threadName)
            pthread_setspecific(Self.driverKey, Unmanaged.passUnretained(self).toOpaque())
            self.drive()
        }
        thread.start()
    }

    /// Stops the driver: transfers still in flight complete with a failure.
    public func shutdown() {
        let already = lock.withLock { () -> Bool in
            defer { stopping = true }
            return stopping
        }
        guard !already else { return }
        reencryptd_eventfd_signal(wakeFD)
        stopped.wait()
    }

    deinit {
        idleHandles.removeAll()
        for pool in pools { curl_multi_cleanup(pool.multi) }
        close(epoll)
        close(wakeFD)
    }

    /// Queues `request`; `completion` runs on the driver thread exactly once.
    /// With `downloadTo`, a 2xx body is streamed to that file descriptor instead of memory (manifests).
    public func submit(_ request: PreparedRequest, downloadTo fd: Int32? = nil, completion: @escaping Completion) {
        let transfer = Transfer(request: request, completion: completion, caBundle: configuration.caBundle)
        transfer.downloadFD = fd ?? -1
        let (rejected, wake) = lock.withLock { () -> (Bool, Bool) in
            if stopping { return (true, false) }
            submitted.append(transfer)
            activeCount += 1
            // One wake-up per sleep, however many submissions arrive before the driver runs.
            guard waitingIdle, !wakePending else { return (false, false) }
            wakePending = true
            return (false, true)
        }
        if rejected {
            completion(.failure(code: Int32(CURLE_ABORTED_BY_CALLBACK.rawValue), message: "the transport is shutting down"))
            return
        }
        // Completions resubmit from the driver thread itself; waking it then would cost a whole extra round.
        if wake { reencryptd_eventfd_signal(wakeFD) }
    }

    /// Starts what has been submitted now rather than at the driver's next poll (up to `submitPollMilliseconds`
    /// away): one wake-up for a batch of submissions. For callers that submit in batches and care about latency
    /// (the engine, after each dispatch round); a caller that never calls it waits at most the poll interval.
    public func flush() {
        let wake = lock.withLock { () -> Bool in
            guard waiting, !wakePending, !submitted.isEmpty else { return false }
            wakePending = true
            return true
        }
        if wake { reencryptd_eventfd_signal(wakeFD) }
    }

    /// Part `part` of `total` split into `parts` nearly equal whole shares that add up to `total` (at least 1 each).
    public static func share(of total: Int, part: Int, parts: Int) -> Int {
        max(1, total / parts + (part < total % parts ? 1 : 0))
    }

    // MARK: Driver thread

    static let submitPollMilliseconds: Int32 = 1
    /// Request bodies from this size up are bounded by stalls rather than by the request timeout (see
    /// `configurePerRequest`): a 30 s total would ask a 30 MB report file for 1 MB/s.
    static let largeBody = 1 << 20
    /// The driver threads' name in `top -H`, `ps -L` and `perf` (at most 15 bytes).
    static let threadName = "reencryptd-curl"

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private func drive() {
        var running: Int32 = 0
        var fds = [Int32](repeating: 0, count: 512)
        var flags = [Int32](repeating: 0, count: 512)
        while true {
            let (batch, stop, afterCompletions) = lock.withLock { () -> ([Transfer], Bool, RoundHandler?) in
                defer { submitted.removeAll(keepingCapacity: true) }
                return (submitted, stopping, roundHandler)
            }
            if stop {
                abortAll(batch)
                afterCompletions?()
                return
            }
            for t in batch {
                guard let handle = idleHandles.popLast() ?? EasyHandle() else {
                    finish(t, .failure(code: Int32(CURLE_OUT_OF_MEMORY.rawValue), message: "curl_easy_init failed"))
                    continue
                }
                if handle.method != t.request.method {
                    if !handle.method.isEmpty { handle.reset() }
                    configure(handle, for: t)
                }
                guard handle.setURL(of: t, plainHTTPProxied: plainHTTPProxied) else {
                    handle.reset()
                    idleHandles.append(handle)
                    finish(t, .failure(code: Int32(CURLE_URL_MALFORMAT.rawValue), message: "libcurl rejected the URL \(t.request.url)"))
                    continue
                }
                let easy = handle.easy
                configurePerRequest(handle, t)
                t.handle = handle
                let pool = pools[poolChoice.choose(host: t.host, pools: pools.count) { pools[$0].active }]
                pool.active += 1
                t.pool = pool.index
                transfers[easy] = t
                curl_multi_add_handle(pool.multi, easy)  // sets a 0 ms timer: the next pass starts it
            }
            // Wait for ready sockets, the timer, or a wake-up; not at all when work is already queued.
            var timeout: Int32 = 1000
            var deadline: Double?
            for pool in pools { if let d = pool.timerDeadline, d < deadline ?? .infinity { deadline = d } }
            if let deadline {
                timeout = Int32(max(0, min(1000, ((deadline - Self.monotonic()) * 1000).rounded(.up))))
            }
            // With transfers in flight the driver wakes within `submitPoll` anyway and picks up what was submitted
            // meanwhile; only an idle driver (nothing in flight) is woken by a submission, and a busy one by `flush()`
            // once per batch. A wake-up per request costs a futex round and two context switches, which at thousands
            // of requests a second was a fifth of the CPU; the poll adds at most a millisecond before a request starts.
            let busy = !transfers.isEmpty
            if busy { timeout = min(timeout, Self.submitPollMilliseconds) }
            let queued = lock.withLock { () -> Bool in
                waiting = true
                waitingIdle = submitted.isEmpty && !busy
                wakePending = false
                return !submitted.isEmpty
            }
            if queued { timeout = 0 }
            let n = fds.withUnsafeMutableBufferPointer { f in
                flags.withUnsafeMutableBufferPointer { g in reencryptd_epoll_wait(epoll, f.baseAddress, g.baseAddress, 512, timeout) }
            }
            lock.withLock {
                waiting = false
                waitingIdle = false
            }
            for i in 0..<max(0, Int(n)) {
                if fds[i] == wakeFD {
                    reencryptd_eventfd_drain(wakeFD)
                    continue
                }
                guard let r = registered[fds[i]] else {
                    epollRemove(fds[i])  // not ours (any more): stop its wake-ups
                    continue
                }
                if r.parked {
                    unpark(fds[i])
                    continue
                }
                var mask: Int32 = 0
                if flags[i] & 1 != 0 { mask |= CURL_CSELECT_IN }
                if flags[i] & 2 != 0 { mask |= CURL_CSELECT_OUT }
                if flags[i] & 4 != 0 { mask |= CURL_CSELECT_ERR }
                curl_multi_socket_action(pools[r.pool].multi, fds[i], mask, &running)
            }
            let now = Self.monotonic()
            for pool in pools {
                guard let deadline = pool.timerDeadline, now >= deadline else { continue }
                pool.timerDeadline = nil
                curl_multi_socket_action(pool.multi, CURL_SOCKET_TIMEOUT, 0, &running)
            }
            for pool in pools { collectCompletions(pool) }
            if completionsThisPass > 0 {
                completionsThisPass = 0
                afterCompletions?()
            }
        }
    }

    private func collectCompletions(_ pool: ConnectionPool) {
        var result = CURLE_OK
        var done: Int32 = 0
        // Every message is read before any handle is removed: curl_multi_remove_handle searches the unread messages
        // for one from its handle, so removing as each is read cost O(k²) for k completions in one round (hundreds
        // at 512 in flight). https://curl.se/libcurl/c/curl_multi_info_read.html
        finished.removeAll(keepingCapacity: true)
        while let easy = reencryptd_multi_info_read(pool.multi, &result, &done), done == 1 { finished.append((easy, result)) }
        for (easy, result) in finished {
            curl_multi_remove_handle(pool.multi, easy)
            pool.active -= 1
            guard let t = transfers.removeValue(forKey: easy) else { continue }
            let outcome: TransportResult
            if result == CURLE_OK {
                var status = 0
                _ = reencryptd_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
                outcome = .response(HTTPResponse(status: status, rawHeaders: t.responseHeaders, body: t.responseBody))
            } else {
                let detail = t.handle.map { String(cString: $0.errorBuffer) } ?? ""
                outcome = .failure(code: Int32(result.rawValue), message: detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail)
            }
            // After a failure the handle starts afresh; after a success it keeps its options for the next request.
            if let handle = t.handle {
                t.handle = nil
                if result != CURLE_OK { handle.reset() }
                if idleHandles.count < 4096 { idleHandles.append(handle) }
            }
            // A kept connection to this host is now idle in this pool (if the server closed it, the next transfer
            // there simply opens another).
            if result == CURLE_OK { poolChoice.finished(host: t.host, pool: pool.index, pools: pools.count) }
            finish(t, outcome)
        }
    }

    private func abortAll(_ batch: [Transfer]) {
        let aborted = TransportResult.failure(code: Int32(CURLE_ABORTED_BY_CALLBACK.rawValue), message: "the transport is shutting down")
        for t in batch { t.completion(aborted) }
        for (easy, t) in transfers {
            curl_multi_remove_handle(pools[t.pool].multi, easy)
            t.handle = nil  // cleans the handle up
            t.completion(aborted)
        }
        transfers.removeAll()
        lock.withLock { activeCount = 0 }
        stopped.signal()
    }

    /// libcurl's socket callback. A kept-alive connection is dropped from the watch list after every response and
    /// added back for the next request: two `epoll_ctl` calls per request, a tenth of the client's system time.
    /// Instead a connection socket stays registered for reading while idle ("parked"): taking it up again for reading
    /// costs nothing, and if the server closes it meanwhile the wake-up removes it then. Only sockets libcurl opened
    /// for connections are parked, and `curlCloseSocket` forgets them, so a recycled descriptor number (libcurl's
    /// resolver socketpair, say) is never mistaken for a registration the kernel already dropped at close.
    /// https://curl.se/libcurl/c/CURLMOPT_SOCKETFUNCTION.html
    fileprivate func watch(_ fd: Int32, what: Int32, pool: Int) {
        if what == CURL_POLL_REMOVE {
            guard let current = registered[fd] else { return }
            if connectionSockets.contains(fd) {
                // An idle connection is always writable: park it for reading only, or every wait would wake for it.
                if current.mask & 2 != 0 {
                    if epollSet(fd, 1, 0, add: false) != 0 {
                        registered[fd] = nil
                        return
                    }
                }
                registered[fd] = (1, true, pool)
            } else {
                registered[fd] = nil
                epollRemove(fd)
            }
            return
        }
        let readable: Int32 = (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ? 1 : 0
        let writable: Int32 = (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ? 1 : 0
        let mask = readable | writable << 1
        let known = registered[fd]
        registered[fd] = (mask, false, pool)
        if known?.mask == mask { return }
        // Change a registration we hold, add one we do not. If that fails, the kernel's view differs from ours (the
        // descriptor was closed and reused under us, or is still registered): do the other.
        if epollSet(fd, readable, writable, add: known == nil) != 0 {
            _ = epollSet(fd, readable, writable, add: known != nil)
        }
    }

    private func epollSet(_ fd: Int32, _ readable: Int32, _ writable: Int32, add: Bool) -> Int32 {
        lock.withLock { epollChangeCount += 1 }
        return reencryptd_epoll_set(epoll, fd, readable, writable, add ? 1 : 0)
    }

    private func epollRemove(_ fd: Int32) {
        lock.withLock { epollChangeCount += 1 }
        _ = reencryptd_epoll_remove(epoll, fd)
    }

    /// A wake-up for a parked connection: the server closed it or sent something unasked. libcurl is not watching it
    /// and will find it dead when it next considers reusing it; stop the wake-ups until then.
    private func unpark(_ fd: Int32) {
        registered[fd] = nil
        epollRemove(fd)
    }

    /// libcurl opened a connection socket.
    fileprivate func opened(_ fd: Int32) {
        forget(fd)  // a stale note under a recycled number
        connectionSockets.insert(fd)
        lock.withLock { connectionsOpenedCount += 1 }
    }

    /// libcurl closed a connection socket: the kernel dropped its registration; drop ours.
    fileprivate func forget(_ fd: Int32) {
        connectionSockets.remove(fd)
        registered[fd] = nil
    }

    private func finish(_ t: Transfer, _ outcome: TransportResult) {
        lock.withLock { activeCount -= 1 }
        completionsThisPass += 1
        t.completion(outcome)
    }

    private func configure(_ handle: EasyHandle, for t: Transfer) {
        let easy = handle.easy
        let request = t.request
        handle.method = request.method
        _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_CURLU, UnsafeRawPointer(handle.url))
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(configuration.connectTimeout * 1000))
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(configuration.requestTimeout * 1000))
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_TCP_NODELAY, 1)
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        // "" disables proxies explicitly, as the environment does by naming none. An empty no-proxy list too: with
        // none set, libcurl 7.88 reads no_proxy and NO_PROXY from the environment (two getenv scans) for every request.
        // https://curl.se/libcurl/c/CURLOPT_PROXY.html ; https://curl.se/libcurl/c/CURLOPT_NOPROXY.html
        if !environmentNamesAProxy {
            _ = "".withCString { reencryptd_easy_setopt_ptr(easy, CURLOPT_PROXY, $0) }
            _ = "".withCString { reencryptd_easy_setopt_ptr(easy, CURLOPT_NOPROXY, $0) }
        }
        // TLS verification stays on (libcurl's default), stated so no later change turns it off by accident.
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1)
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2)
        if let ca = t.caBundle { ca.withUnsafeBufferPointer { _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_CAINFO, $0.baseAddress) } }
        switch request.method {
        case "HEAD": _ = reencryptd_easy_setopt_long(easy, CURLOPT_NOBODY, 1)
        case "GET": _ = reencryptd_easy_setopt_long(easy, CURLOPT_HTTPGET, 1)
        default: break
        }
        _ = reencryptd_easy_setopt_write(easy, curlWrite)
        _ = reencryptd_easy_setopt_header(easy, curlHeader)
        // libcurl empties it before each transfer. https://curl.se/libcurl/c/CURLOPT_ERRORBUFFER.html
        _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_ERRORBUFFER, handle.errorBuffer)
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = reencryptd_easy_setopt_opensocket(easy, curlOpenSocket)
        _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_OPENSOCKETDATA, me)
        _ = reencryptd_easy_setopt_closesocket(easy, curlCloseSocket)
        _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_CLOSESOCKETDATA, me)
    }

    /// The options that point into this transfer's memory, set for every request (the URL is `EasyHandle.setURL`).
    private func configurePerRequest(_ handle: EasyHandle, _ t: Transfer) {
        let easy = handle.easy
        // A body streamed to a file (a manifest: gigabytes, perhaps) or a large upload (a report file) is bounded by
        // stalls, not by a total: it is given up when under a byte a second moves for the request timeout (libcurl
        // averages the speed over its last five seconds, so a stall shows up to five seconds later), however long it
        // runs while data flows (botocore's read timeout is per read, too). Other requests keep the total. Set only
        // when the handle's last request was the other kind: UpdateObjectEncryption pays nothing for it.
        // https://curl.se/libcurl/c/CURLOPT_LOW_SPEED_TIME.html
        let stallBounded = t.downloadFD >= 0 || t.body.count >= Self.largeBody
        if handle.stallBounded != stallBounded {
            handle.stallBounded = stallBounded
            _ = reencryptd_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, stallBounded ? 0 : Int(configuration.requestTimeout * 1000))
            _ = reencryptd_easy_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, stallBounded ? 1 : 0)
            _ = reencryptd_easy_setopt_long(easy, CURLOPT_LOW_SPEED_TIME,
                                            stallBounded ? max(1, Int(configuration.requestTimeout.rounded(.up))) : 0)
        }
        if t.request.method != "HEAD" && t.request.method != "GET" {
            _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_CUSTOMREQUEST, t.method)
            // The body is known and small: POSTFIELDS sends it with a Content-Length and no Expect: 100-continue.
            _ = reencryptd_easy_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(t.body.count))
            t.body.withUnsafeBufferPointer { _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_POSTFIELDS, $0.baseAddress) }
        }
        _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_HTTPHEADER, UnsafeRawPointer(t.headerList))
        let context = Unmanaged.passUnretained(t).toOpaque()
        _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, context)
        _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_HEADERDATA, context)
    }
}

/// An easy handle between and during transfers, with its parsed URL. Options are sticky, so a handle that served the
/// same kind of request (`method`; "" after a reset) only needs the per-request ones.
///
/// Given a URL string, libcurl 7.88 parses it for every request and then prints it back out through its own printf,
/// one character at a time: about 8% of the client's time per request (perf, client bench). So the handle gives
/// libcurl the URL already parsed (CURLOPT_CURLU), and only its `scheme://authority/`, parsed again only when that
/// changes; it names the path and query in the request line as they were signed (CURLOPT_REQUEST_TARGET). Setting
/// the path or query on the parsed URL instead is no good: libcurl lowercases their percent-escapes (`%2B` becomes
/// `%2b`), and the signature covers them as sent.
/// A plain-http request to a forward proxy must carry the whole URL in its request line, so when the environment
/// names one (`http_proxy`, `all_proxy`) such requests set the whole URL each time instead.
/// https://curl.se/libcurl/c/CURLOPT_CURLU.html ; https://curl.se/libcurl/c/CURLOPT_REQUEST_TARGET.html
final class EasyHandle {
    let easy: UnsafeMutableRawPointer
    let url: OpaquePointer
    /// Where libcurl describes a failure (CURLOPT_ERRORBUFFER), for as long as the handle lives.
    let errorBuffer: UnsafeMutablePointer<CChar>
    var method = ""
    /// Whether the handle's timeouts are set for stalls rather than a total (see `CurlTransport.configurePerRequest`).
    var stallBounded = false
    /// The `scheme://authority` that `url` holds while requests name their own target (empty otherwise).
    private var origin: [UInt8] = []

    init?() {
        guard let easy = curl_easy_init() else { return nil }
        guard let url = curl_url() else {
            curl_easy_cleanup(easy)
            return nil
        }
        self.easy = easy
        self.url = url
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(to: 0)
    }

    deinit {
        curl_easy_cleanup(easy)
        curl_url_cleanup(url)
        errorBuffer.deallocate()
    }

    /// Back to libcurl's defaults; the next request sets every option and parses its URL afresh.
    func reset() {
        curl_easy_reset(easy)
        method = ""
        stallBounded = false
        origin.removeAll()
    }

    /// Points the handle at the transfer's URL. False if libcurl rejects it.
    func setURL(of t: Transfer, plainHTTPProxied: Bool) -> Bool {
        // S3 keys like `./x/../y` are distinct objects: the path keeps its dot segments. libcurl only ever gets a
        // parsed URL, so this flag, not CURLOPT_PATH_AS_IS, is what keeps them. https://curl.se/libcurl/c/curl_url_set.html
        let flags = UInt32(CURLU_PATH_AS_IS)
        if plainHTTPProxied && t.isPlainHTTP {
            origin.removeAll()
            return curl_url_set(url, CURLUPART_URL, t.url, flags) == CURLUE_OK
                && reencryptd_easy_setopt_ptr(easy, CURLOPT_REQUEST_TARGET, nil) == CURLE_OK
        }
        let sameOrigin = !origin.isEmpty && origin.count == t.originLength
            && origin.withUnsafeBytes { memcmp($0.baseAddress!, t.url, t.originLength) == 0 }
        if !sameOrigin {
            // Only `scheme://authority/` is parsed: the target is named separately, and libcurl prints the handle's
            // whole URL and percent-encodes its path again for every transfer (Curl_pretransfer, parseurlandfillconn),
            // one character at a time, so a long key in here would cost on every request that reuses the handle.
            var originURL = Array(UnsafeRawBufferPointer(start: t.url, count: t.originLength))
            origin = originURL
            originURL.append(contentsOf: [0x2F, 0])  // "/" and the terminator
            let parsed = originURL.withUnsafeBytes {
                curl_url_set(url, CURLUPART_URL, $0.baseAddress!.assumingMemoryBound(to: CChar.self), flags)
            }
            guard parsed == CURLUE_OK else {
                origin.removeAll()
                return false
            }
        }
        return reencryptd_easy_setopt_ptr(easy, CURLOPT_REQUEST_TARGET, t.target) == CURLE_OK
    }
}

/// One request in flight: its C strings and buffers live here until libcurl is done with them.
final class Transfer {
    let request: PreparedRequest
    let completion: CurlTransport.Completion
    let body: [UInt8]
    let caBundle: [CChar]?
    /// URL (its tail is the request target), method and every header line as C strings, back to back, in one
    /// allocation; `headerList` links nodes (a second allocation) pointing into it. libcurl only reads the list, so it
    /// need not come from `curl_slist_append`, which would cost two allocations per header.
    /// https://curl.se/libcurl/c/CURLOPT_HTTPHEADER.html
    private let strings: UnsafeMutableBufferPointer<CChar>
    private let nodes: UnsafeMutableBufferPointer<curl_slist>
    let url: UnsafePointer<CChar>
    /// The URL's `scheme://authority` length, and the rest (path and query: the request target) as a C string.
    let originLength: Int
    let target: UnsafePointer<CChar>
    var isPlainHTTP: Bool { originLength > 4 && url[4] == 0x3A }  // "http:", not "https"
    let method: UnsafePointer<CChar>
    var headerList: UnsafeMutablePointer<curl_slist>? { nodes.isEmpty ? nil : nodes.baseAddress }
    // Written by libcurl's header and write callbacks as a response arrives, and read once it is complete: all on
    // the driver thread, and never while another access to the same field is under way (a callback does not call
    // back into this transfer). So without the run-time exclusivity check that each access to a class's stored
    // property makes: a dozen per response in the header callback. https://www.swift.org/blog/swift-5-exclusivity/
    /// The header lines of the response being received, as received.
    @exclusivity(unchecked) var responseHeaders: [UInt8] = []
    @exclusivity(unchecked) var responseBody: [UInt8] = []
    /// The connection pool whose multi handle runs this transfer, and the easy handle (set by the driver).
    var pool = 0
    var handle: EasyHandle?
    /// The `Host` header as sent (`host[:port]`), which is what a connection is kept for.
    let host: String
    /// Where a 2xx body goes when streaming to a file; -1 for memory.
    var downloadFD: Int32 = -1
    /// The status of the response being received (from its status line), to route the body.
    @exclusivity(unchecked) var currentStatus = 0
    var downloadFailed = false

    private static let removals: [StaticString] = ["Expect:", "Accept:"]
    private static let removalsWithContentType: [StaticString] = removals + ["Content-Type:"]

    init(request: PreparedRequest, completion: @escaping CurlTransport.Completion, caBundle: String? = nil) {
        self.request = request
        self.completion = completion
        body = request.body
        self.caBundle = caBundle.map { Array($0.utf8CString) }
        host = request.headers.first { ASCII.equalsLowercased($0.name, "host") }?.value ?? ""
        // "Name:" with no value removes a header libcurl would add on its own (POSTFIELDS implies a form
        // Content-Type; Expect: 100-continue would cost a round trip). https://curl.se/libcurl/c/CURLOPT_HTTPHEADER.html
        let removals = request.headers.contains(where: { ASCII.equalsLowercased($0.name, "content-type") })
            ? Self.removals : Self.removalsWithContentType
        // The path starts at the first '/' after "://".
        var urlText = request.url
        let (urlLength, pathStart) = urlText.withUTF8 { u -> (Int, Int) in
            var slashes = 0
            for i in u.indices where u[i] == 0x2F {
                slashes += 1
                if slashes == 3 { return (u.count, i) }
            }
            return (u.count, u.count)
        }
        // The URL, "/" as the target should the URL have no path, the method.
        var size = urlLength + 1 + 2 + request.method.utf8.count + 1
        for (name, value) in request.headers { size += name.utf8.count + 2 + value.utf8.count + 1 }
        for r in removals { size += r.utf8CodeUnitCount + 1 }
        let strings = UnsafeMutableBufferPointer<CChar>.allocate(capacity: size)
        let nodes = UnsafeMutableBufferPointer<curl_slist>.allocate(capacity: request.headers.count + removals.count)
        let base = strings.baseAddress!
        var packer = CStringPacker(base: base)
        packer.put(request.url)
        packer.terminate()
        // The target is the URL's tail, ending at the URL's own terminator.
        var targetAt = pathStart
        if pathStart == urlLength {
            targetAt = packer.at
            packer.put("/")
            packer.terminate()
        }
        let methodAt = packer.at
        packer.put(request.method)
        packer.terminate()
        var node = 0
        for (name, value) in request.headers {
            nodes[node] = curl_slist(data: base + packer.at, next: nil)
            node += 1
            packer.put(name)
            packer.put(": ")
            packer.put(value)
            packer.terminate()
        }
        for r in removals {
            nodes[node] = curl_slist(data: base + packer.at, next: nil)
            node += 1
            packer.put(UnsafeBufferPointer(start: r.utf8Start, count: r.utf8CodeUnitCount))
            packer.terminate()
        }
        for i in nodes.indices.dropLast() { nodes[i].next = nodes.baseAddress! + i + 1 }
        self.strings = strings
        self.nodes = nodes
        url = UnsafePointer(base)
        originLength = pathStart
        target = UnsafePointer(base + targetAt)
        method = UnsafePointer(base + methodAt)
    }

    deinit {
        strings.deallocate()
        nodes.deallocate()
    }
}

/// Writes C strings back to back into one buffer sized beforehand. A struct the caller owns rather than closures over
/// a shared offset: those box the offset and check exclusive access at run time on every write.
private struct CStringPacker {
    let base: UnsafeMutablePointer<CChar>
    private(set) var at = 0

    init(base: UnsafeMutablePointer<CChar>) { self.base = base }

    mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress else { return }
        UnsafeMutableRawPointer(base + at).copyMemory(from: source, byteCount: bytes.count)
        at += bytes.count
    }

    mutating func put(_ text: String) {
        var text = text
        text.withUTF8 { put($0) }
    }

    mutating func terminate() {
        base[at] = 0
        at += 1
    }
}

private let curlWrite: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { data, size, count, context in
    guard let data, let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let n = size * count
    if transfer.downloadFD >= 0, (200..<300).contains(transfer.currentStatus) {
        var offset = 0
        while offset < n {
            let written = write(transfer.downloadFD, data + offset, n - offset)
            if written < 0 {
                if errno == EINTR { continue }
                transfer.downloadFailed = true
                return 0  // libcurl aborts the transfer with CURLE_WRITE_ERROR
            }
            offset += written
        }
        return n
    }
    data.withMemoryRebound(to: UInt8.self, capacity: n) { transfer.responseBody.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
    return n
}

private let curlHeader: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { data, size, count, context in
    guard let data, let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let n = size * count
    // Byte-level parsing: this runs for every header of every response on the driver thread.
    data.withMemoryRebound(to: UInt8.self, capacity: n) { p in
        let line = UnsafeBufferPointer(start: p, count: n)
        if n >= 5, line[0] == 0x48, line[1] == 0x54, line[2] == 0x54, line[3] == 0x50, line[4] == 0x2F {  // "HTTP/"
            // A new status line (after a 100 Continue or a redirect): drop headers of the previous response.
            transfer.responseHeaders.removeAll(keepingCapacity: true)
            var i = 5
            while i < n && line[i] != 0x20 { i += 1 }
            var status = 0
            i += 1
            while i < n, line[i] >= 0x30, line[i] <= 0x39 { status = status * 10 + Int(line[i] - 0x30); i += 1 }
            transfer.currentStatus = status
            return
        }
        // Header lines are kept as received; HTTPResponse reads them on demand. The blank line ending the head is not.
        guard line.firstIndex(of: 0x3A) != nil else { return }
        if transfer.responseHeaders.capacity == 0 { transfer.responseHeaders.reserveCapacity(512) }
        transfer.responseHeaders.append(contentsOf: line)
    }
    return n
}

private let curlSocketCallback: reencryptd_socket_cb = { _, fd, what, userp, _ in
    guard let userp else { return 0 }
    let pool = Unmanaged<ConnectionPool>.fromOpaque(userp).takeUnretainedValue()
    pool.transport.watch(fd, what: what, pool: pool.index)
    return 0
}

/// Opens a connection socket as libcurl would, and notes it as one (see `CurlTransport.watch`).
/// https://curl.se/libcurl/c/CURLOPT_OPENSOCKETFUNCTION.html
private let curlOpenSocket: reencryptd_opensocket_cb = { clientp, _, address in
    guard let clientp, let address else { return CURL_SOCKET_BAD }
    let fd = socket(address.pointee.family, address.pointee.socktype, address.pointee.protocol)
    guard fd >= 0 else { return CURL_SOCKET_BAD }
    Unmanaged<CurlTransport>.fromOpaque(clientp).takeUnretainedValue().opened(fd)
    return fd
}

/// https://curl.se/libcurl/c/CURLOPT_CLOSESOCKETFUNCTION.html
private let curlCloseSocket: reencryptd_closesocket_cb = { clientp, fd in
    if let clientp { Unmanaged<CurlTransport>.fromOpaque(clientp).takeUnretainedValue().forget(fd) }
    return close(fd)
}

private let curlTimerCallback: reencryptd_timer_cb = { _, timeoutMs, userp in
    guard let userp else { return 0 }
    let pool = Unmanaged<ConnectionPool>.fromOpaque(userp).takeUnretainedValue()
    pool.timerDeadline = timeoutMs < 0 ? nil : CurlTransport.monotonic() + Double(timeoutMs) / 1000
    return 0
}

/// Which pool a new transfer goes to: the one with the fewest in flight, if it holds an idle connection to the
/// transfer's host; else a pool that does; else the least busy anyway (it opens a connection). With one host the least
/// busy pool nearly always has one idle; with many hosts (virtual-hosted buckets each have their own) it often has none
/// to the host asked while another pool does, and choosing by load alone paid for a new connection and TLS handshake.
struct PoolChoice {
    /// Per host, connections left idle in each pool by finished transfers (a closed one is found out when used).
    private var idle: [String: [Int]] = [:]
    static let hostsRemembered = 4096

    // The host's name is hashed once per call (five times a request before): the counts are then reached by index.
    mutating func choose(host: String, pools count: Int, active: (Int) -> Int) -> Int {
        guard count > 1 else { return 0 }  // one pool: nothing to choose, nothing to remember
        var best = 0
        for p in 1..<count where active(p) < active(best) { best = p }
        guard let i = idle.index(forKey: host) else { return best }
        let pick = idle.values[i][best] > 0 ? best : idle.values[i].firstIndex { $0 > 0 }
        guard let pick else { return best }
        idle.values[i][pick] -= 1  // in place: no copy of the counts
        return pick
    }

    mutating func finished(host: String, pool: Int, pools count: Int) {
        guard count > 1 else { return }
        // Bounded in hosts too: a daemon that has touched very many buckets forgets, at the cost of a few connections
        // opened where an idle one could have served.
        if idle.count >= Self.hostsRemembered, idle.index(forKey: host) == nil { idle.removeAll() }
        Self.addIdle(to: &idle[host, default: [Int](repeating: 0, count: count)], pool: pool)
    }

    /// Bounded: a pool keeps at most twice its share of connections.
    private static func addIdle(to counts: inout [Int], pool: Int) {
        if counts[pool] < 2 * ConnectionPool.connections { counts[pool] += 1 }
    }
}

/// One multi handle and the connections it keeps, used by one driver thread. libcurl 7.88 walks a multi handle's
/// connections twice for every request: looking for an idle one to reuse (the host's whole list, from the start), and
/// in `curl_multi_remove_handle`, where it looks through the whole cache for a connect-only connection to close. At 512
/// connections in one handle those walks cost a fifth of the client's time per request, so a driver spreads its
/// connections over pools of at most `connections` each (`PoolChoice` picks the pool for each new transfer).
final class ConnectionPool {
    /// Few enough that the walks stay short, enough that a handful of pools covers thousands of transfers. At 64
    /// connections per pool the client's cost per request is the same as with 64 connections in all.
    static let connections = 64

    static func count(forConnections total: Int) -> Int { max(1, (total + connections - 1) / connections) }

    let index: Int
    let multi: UnsafeMutableRawPointer
    // unowned(unsafe), as the callbacks' Unmanaged pointers are: libcurl may call back while the transport's deinit
    // cleans up the multi handles, when a checked unowned reference would trap.
    unowned(unsafe) let transport: CurlTransport
    /// Transfers added to `multi` and not yet removed.
    var active = 0
    /// When libcurl wants `socket_action(CURL_SOCKET_TIMEOUT)` on `multi`, in monotonic seconds; nil for never.
    var timerDeadline: Double?

    init?(index: Int, transport: CurlTransport, maxHostConnections: Int) {
        guard let multi = curl_multi_init() else { return nil }
        self.index = index
        self.multi = multi
        self.transport = transport
        _ = reencryptd_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, maxHostConnections)
        _ = reencryptd_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, maxHostConnections * 2)
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = reencryptd_multi_setopt_socketfunction(multi, curlSocketCallback)
        _ = reencryptd_multi_setopt_ptr(multi, CURLMOPT_SOCKETDATA, me)
        _ = reencryptd_multi_setopt_timerfunction(multi, curlTimerCallback)
        _ = reencryptd_multi_setopt_ptr(multi, CURLMOPT_TIMERDATA, me)
    }
}

public enum ASCII {
    /// `b` with an ASCII capital letter made lowercase; any other byte as it is.
    @inlinable
    public static func lowercased(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

    /// Whether `a` equals `lowercased` ignoring ASCII case; `lowercased` must be lowercase already.
    @inline(__always)
    public static func equalsLowercased(_ a: String, _ lowercased: String) -> Bool {
        var a = a.utf8.makeIterator()
        var b = lowercased.utf8.makeIterator()
        while true {
            switch (a.next(), b.next()) {
            case (nil, nil): return true
            case (let x?, let y?):
                if ASCII.lowercased(x) != y { return false }
            default: return false
            }
        }
    }
}
