import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP server whose answers a closure gives: the stand-in for STS, the container credentials endpoint and
/// EC2 instance metadata in tests, and the daemon's `/metrics` endpoint. Records every request it saw.
public final class StubServer: @unchecked Sendable {
    public typealias Handler = @Sendable (SimRequest) -> (status: Int, headers: [(String, String)], body: String)
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let lock = NIOLock()
    private var seen: [SimRequest] = []
    private var channel: Channel?
    /// Closes each connection this long after each answer, unannounced: a server's idle timeout as the client meets
    /// it. nil (the default) keeps connections open. An answer with `Connection: close` closes at once.
    public var closeIdleConnectionsAfterMilliseconds: Int64?

    public init() {}

    /// Starts on `host:port` (default: a random loopback port); returns `http://HOST:PORT`.
    public func start(host: String = "127.0.0.1", port: Int = 0, recording: Bool = true, _ handler: @escaping Handler) throws -> String {
        let record: @Sendable (SimRequest) -> Void = { [weak self] r in if recording { self?.lock.withLock { self?.seen.append(r) } } }
        let idleClose = closeIdleConnectionsAfterMilliseconds.map { TimeAmount.milliseconds($0) }
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(StubHandler(handler: handler, record: record, idleClose: idleClose))
                }
            }
            .bind(host: host, port: port).wait()
        lock.withLock { self.channel = channel }
        return "http://\(host):\(channel.localAddress?.port ?? port)"
    }

    public var requests: [SimRequest] { lock.withLock { seen } }

    public func stop() {
        try? lock.withLock { channel }?.close().wait()
        try? group.syncShutdownGracefully()
    }
}

private final class StubHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let handler: StubServer.Handler
    let record: @Sendable (SimRequest) -> Void
    let idleClose: TimeAmount?
    var head: HTTPRequestHead?
    var body: [UInt8] = []

    init(handler: @escaping StubServer.Handler, record: @escaping @Sendable (SimRequest) -> Void, idleClose: TimeAmount?) {
        self.handler = handler
        self.record = record
        self.idleClose = idleClose
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
        case .body(var b): body += b.readBytes(length: b.readableBytes) ?? []
        case .end:
            guard let head else { return }
            let request = SimRequest(method: head.method.rawValue, uri: head.uri,
                                     headers: head.headers.map { (name: $0.name, value: $0.value) }, body: body)
            record(request)
            let answer = handler(request)
            var headers = HTTPHeaders(answer.headers)
            headers.replaceOrAdd(name: "content-length", value: String(answer.body.utf8.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .init(statusCode: answer.status),
                                                                 headers: headers))), promise: nil)
            var buffer = context.channel.allocator.buffer(capacity: answer.body.utf8.count)
            buffer.writeString(answer.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            if headers["connection"].contains(where: { $0.lowercased() == "close" }) {
                context.close(promise: nil)
            } else if let idleClose {
                let channel = context.channel
                channel.eventLoop.scheduleTask(in: idleClose) { channel.close(promise: nil) }
            }
        }
    }
}
