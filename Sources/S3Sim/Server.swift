import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The simulator's HTTP/1.1 server (SwiftNIO), keep-alive, on loopback.
public final class S3Simulator: @unchecked Sendable {
    public let service: SimService
    public var state: SimState { service.state }
    private let group: MultiThreadedEventLoopGroup
    // Set once by start(), read after: guarded by `lock`.
    private let lock = NIOLock()
    private var channel: Channel?

    /// - Parameters:
    ///   - threads: event-loop threads (1 measures "one core").
    ///   - verifySignatures: check SigV4 on every request (off only to measure its cost).
    public init(state: SimState = SimState(), credentials: [SimCredential] = [.default], verifySignatures: Bool = true,
                threads: Int = 1) {
        service = SimService(state: state, credentials: credentials, verifySignatures: verifySignatures)
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    /// Binds `host:port` (0: a random free port) and returns the port.
    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 0) throws -> Int {
        let service = self.service
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(SimHTTPHandler(service: service))
                }
            }
        let channel = try bootstrap.bind(host: host, port: port).wait()
        lock.withLock { self.channel = channel }
        return channel.localAddress?.port ?? port
    }

    public var port: Int? { lock.withLock { channel?.localAddress?.port } }
    public var endpointURL: String { "http://127.0.0.1:\(port ?? 0)" }

    public func stop() {
        let channel = lock.withLock { () -> Channel? in
            defer { self.channel = nil }
            return self.channel
        }
        try? channel?.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// Collects one request (head and body), asks the service, writes the answer, holding it back for latency faults
/// with a scheduled task rather than a sleeping thread.
final class SimHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let service: SimService
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(service: SimService) { self.service = service }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.removeAll(keepingCapacity: true)
            if h.headers["expect"].first?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: .continue))), promise: nil)
            }
        case .body(var buffer):
            if let bytes = buffer.readBytes(length: buffer.readableBytes) { body += bytes }
        case .end:
            guard let head else { return }
            self.head = nil
            let request = SimRequest(method: head.method.rawValue, uri: head.uri,
                                     headers: head.headers.map { (name: $0.name, value: $0.value) }, body: body)
            let response = service.handle(request)
            switch response.fault {
            case .reset:
                // SO_LINGER 0 makes close() send a TCP RST: the client sees a reset, not a clean close.
                if let provider = context.channel as? SocketOptionProvider {
                    provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                } else {
                    context.close(promise: nil)
                }
            case .delay(let seconds):
                let keepAlive = head.isKeepAlive
                let version = head.version
                context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) {
                    self.write(response, version: version, keepAlive: keepAlive, method: head.method, context: context)
                }
            case nil:
                write(response, version: head.version, keepAlive: head.isKeepAlive, method: head.method, context: context)
            }
        }
    }

    private func write(_ response: SimResponse, version: HTTPVersion, keepAlive: Bool, method: HTTPMethod,
                       context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
        headers.replaceOrAdd(name: "content-length", value: String(response.contentLengthOverride ?? response.body.count))
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .init(statusCode: response.status),
                                                             headers: headers))), promise: nil)
        if method != .HEAD, !response.body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }
}
