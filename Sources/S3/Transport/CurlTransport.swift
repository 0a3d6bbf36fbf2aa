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
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
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

    public init() {}
}

/// libcurl's multi interface on one driver thread: thousands of transfers in flight, connections kept alive and
/// shared through the multi handle's cache, completions delivered by callback on the driver thread (callers must
/// hand heavy work elsewhere). No thread is blocked per request.
/// https://curl.se/libcurl/c/libcurl-multi.html ; https://curl.se/libcurl/c/libcurl-thread.html
public final class CurlTransport: @unchecked Sendable {
    public typealias Completion = @Sendable (TransportResult) -> Void

    private let multi: UnsafeMutableRawPointer
    private let configuration: TransportConfiguration
    // Submissions cross threads through `lock`; everything else is touched by the driver thread only.
    // That discipline is what makes @unchecked Sendable sound.
    private let lock = NSLock()
    private var submitted: [Transfer] = []
    private var stopping = false
    private var thread: Thread?
    private let stopped = DispatchSemaphore(value: 0)
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private var active = 0

    /// Transfers in flight or queued (for metrics).
    public var inFlight: Int { lock.withLock { activeCount } }
    private var activeCount = 0

    private static let globalInit: Void = {
        // Once per process, before any thread uses curl; and SIGPIPE must not kill us when a peer resets.
        curl_global_init(Int(CURL_GLOBAL_ALL))
        signal(SIGPIPE, SIG_IGN)
    }()

    public init(configuration: TransportConfiguration = TransportConfiguration()) throws {
        _ = Self.globalInit
        guard let multi = curl_multi_init() else { throw S3ClientError.transport("curl_multi_init failed") }
        self.multi = multi
        self.configuration = configuration
        _ = reencryptd_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, configuration.maxHostConnections)
        _ = reencryptd_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, configuration.maxHostConnections * 2)
        let thread = Thread { [unowned self] in self.drive() }
        thread.name = "reencryptd-curl"
        self.thread = thread
        thread.start()
    }

    /// Stops the driver: transfers still in flight complete with a failure.
    public func shutdown() {
        lock.withLock { stopping = true }
        curl_multi_wakeup(multi)
        stopped.wait()
    }

    deinit {
        for h in idleHandles { curl_easy_cleanup(h) }
        curl_multi_cleanup(multi)
    }

    /// Queues `request`; `completion` runs on the driver thread exactly once.
    /// With `downloadTo`, a 2xx body is streamed to that file descriptor instead of memory (manifests).
    public func submit(_ request: PreparedRequest, downloadTo fd: Int32? = nil, completion: @escaping Completion) {
        let transfer = Transfer(request: request, completion: completion, caBundle: configuration.caBundle)
        transfer.downloadFD = fd ?? -1
        let rejected = lock.withLock { () -> Bool in
            if stopping { return true }
            submitted.append(transfer)
            activeCount += 1
            return false
        }
        if rejected {
            completion(.failure(code: Int32(CURLE_ABORTED_BY_CALLBACK.rawValue), message: "the transport is shutting down"))
            return
        }
        curl_multi_wakeup(multi)
    }

    // MARK: Driver thread

    private func drive() {
        var running: Int32 = 0
        var transfers: [UnsafeMutableRawPointer: Transfer] = [:]
        while true {
            let (batch, stop) = lock.withLock { () -> ([Transfer], Bool) in
                defer { submitted.removeAll(keepingCapacity: true) }
                return (submitted, stopping)
            }
            if stop {
                for t in batch { t.completion(.failure(code: Int32(CURLE_ABORTED_BY_CALLBACK.rawValue), message: "the transport is shutting down")) }
                for (easy, t) in transfers {
                    curl_multi_remove_handle(multi, easy)
                    curl_easy_cleanup(easy)
                    t.release()
                    t.completion(.failure(code: Int32(CURLE_ABORTED_BY_CALLBACK.rawValue), message: "the transport is shutting down"))
                }
                lock.withLock { activeCount = 0 }
                stopped.signal()
                return
            }
            for t in batch {
                let easy = idleHandles.popLast() ?? curl_easy_init()
                guard let easy else {
                    finish(t, .failure(code: Int32(CURLE_OUT_OF_MEMORY.rawValue), message: "curl_easy_init failed"))
                    continue
                }
                configure(easy, t)
                transfers[easy] = t
                curl_multi_add_handle(multi, easy)
            }
            curl_multi_perform(multi, &running)
            var result = CURLE_OK
            var done: Int32 = 0
            while let easy = reencryptd_multi_info_read(multi, &result, &done), done == 1 {
                curl_multi_remove_handle(multi, easy)
                guard let t = transfers.removeValue(forKey: easy) else { continue }
                let outcome: TransportResult
                if result == CURLE_OK {
                    var status = 0
                    _ = reencryptd_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
                    outcome = .response(HTTPResponse(status: status, headers: t.responseHeaders, body: t.responseBody))
                } else {
                    let detail = t.errorMessage()
                    let text = detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail
                    outcome = .failure(code: Int32(result.rawValue), message: text)
                }
                t.release()
                curl_easy_reset(easy)
                if idleHandles.count < 4096 { idleHandles.append(easy) } else { curl_easy_cleanup(easy) }
                finish(t, outcome)
            }
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }

    private func finish(_ t: Transfer, _ outcome: TransportResult) {
        lock.withLock { activeCount -= 1 }
        t.completion(outcome)
    }

    private func configure(_ easy: UnsafeMutableRawPointer, _ t: Transfer) {
        let request = t.request
        t.url.withUnsafeBufferPointer { _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_URL, $0.baseAddress) }
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        // S3 keys like `./x/../y` are distinct objects: libcurl must not squash dot segments.
        // https://curl.se/libcurl/c/CURLOPT_PATH_AS_IS.html
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_PATH_AS_IS, 1)
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(configuration.connectTimeout * 1000))
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(configuration.requestTimeout * 1000))
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_TCP_NODELAY, 1)
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        // TLS verification stays on (libcurl's default), stated so no later change turns it off by accident.
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1)
        _ = reencryptd_easy_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2)
        if let ca = t.caBundle { ca.withUnsafeBufferPointer { _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_CAINFO, $0.baseAddress) } }
        t.errorBuffer.withUnsafeMutableBufferPointer { _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_ERRORBUFFER, $0.baseAddress) }
        switch request.method {
        case "HEAD": _ = reencryptd_easy_setopt_long(easy, CURLOPT_NOBODY, 1)
        case "GET": _ = reencryptd_easy_setopt_long(easy, CURLOPT_HTTPGET, 1)
        default:
            t.method.withUnsafeBufferPointer { _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_CUSTOMREQUEST, $0.baseAddress) }
            // The body is known and small: POSTFIELDS sends it with a Content-Length and no Expect: 100-continue.
            _ = reencryptd_easy_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(t.body.count))
            t.body.withUnsafeBufferPointer { _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_POSTFIELDS, $0.baseAddress) }
        }
        _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_HTTPHEADER, UnsafeRawPointer(t.headerList))
        let context = Unmanaged.passUnretained(t).toOpaque()
        _ = reencryptd_easy_setopt_write(easy, curlWrite)
        _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, context)
        _ = reencryptd_easy_setopt_header(easy, curlHeader)
        _ = reencryptd_easy_setopt_ptr(easy, CURLOPT_HEADERDATA, context)
    }
}

/// One request in flight: its C strings and buffers live here until libcurl is done with them.
final class Transfer {
    let request: PreparedRequest
    let completion: CurlTransport.Completion
    let url: [CChar]
    let method: [CChar]
    let body: [UInt8]
    let caBundle: [CChar]?
    var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE))
    var headerList: UnsafeMutablePointer<curl_slist>?
    var responseHeaders: [(name: String, value: String)] = []
    var responseBody: [UInt8] = []
    /// Where a 2xx body goes when streaming to a file; -1 for memory.
    var downloadFD: Int32 = -1
    /// The status of the response being received (from its status line), to route the body.
    var currentStatus = 0
    var downloadFailed = false

    init(request: PreparedRequest, completion: @escaping CurlTransport.Completion, caBundle: String? = nil) {
        self.request = request
        self.completion = completion
        url = Array(request.url.utf8CString)
        method = Array(request.method.utf8CString)
        body = request.body
        self.caBundle = caBundle.map { Array($0.utf8CString) }
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in request.headers {
            list = curl_slist_append(list, "\(name): \(value)")
        }
        // "Name:" with no value removes a header libcurl would add on its own (POSTFIELDS implies a form
        // Content-Type; Expect: 100-continue would cost a round trip). https://curl.se/libcurl/c/CURLOPT_HTTPHEADER.html
        list = curl_slist_append(list, "Expect:")
        list = curl_slist_append(list, "Accept:")
        if !request.headers.contains(where: { $0.name.lowercased() == "content-type" }) {
            list = curl_slist_append(list, "Content-Type:")
        }
        headerList = list
    }

    func release() {
        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
    }

    func errorMessage() -> String {
        errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
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
    let line = data.withMemoryRebound(to: UInt8.self, capacity: n) { String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self) }
    if line.hasPrefix("HTTP/") {
        // A new status line (after a 100 Continue or a redirect): drop headers of the previous response.
        transfer.responseHeaders.removeAll()
        let fields = line.split(separator: " ")
        transfer.currentStatus = fields.count > 1 ? Int(fields[1]) ?? 0 : 0
    } else if let colon = line.firstIndex(of: ":") {
        let name = String(line[..<colon])
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        transfer.responseHeaders.append((name, value))
    }
    return n
}
