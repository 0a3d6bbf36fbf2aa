import Domain
import Foundation
import S3
import NIOCore

/// A lean HTTP/1.1 server codec for the simulator: parses requests straight from the socket's bytes and writes each
/// answer as one buffer. Hand-written rather than NIO's HTTP pipeline (llhttp, HTTPHeaders, encoder, pipelining
/// handler), which alone capped a trivial answer at about 43,000 per second on one core here, leaving nothing for
/// S3's work; the simulator must never be what a benchmark measures. Requests on a connection are answered one at a
/// time, in order (clients here do not pipeline; if one does, later requests wait in the buffer).
final class SimHTTPCodec: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let service: SimService
    private var buffer: ByteBuffer?
    /// A request is being answered (perhaps after a latency delay): do not parse the next one yet.
    private var answering = false
    private var closed = false
    private var flushPending = false
    /// Where `answer` composes each response head.
    private var scratch: [UInt8] = []
    static let maxHead = 64 * 1024

    private let loop: LoopCache
    private let delayed: DelayedAnswers

    init(service: SimService, loop: LoopCache, delayed: DelayedAnswers) {
        self.service = service
        self.loop = loop
        self.delayed = delayed
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        processBuffered(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        context.fireChannelInactive()
    }

    struct Head {
        var method: String
        var uri: String
        var fields: FieldsBuilder
        var contentLength: Int
        var keepAlive: Bool
        var expectContinue: Bool
        var headLength: Int
    }

    private func processBuffered(context: ChannelHandlerContext) {
        while !answering, !closed, var buf = buffer, buf.readableBytes > 0 {
            let parsed: Head?
            do {
                parsed = try buf.withUnsafeReadableBytes { try Self.parseHead($0) }
            } catch {
                writeRaw("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", close: true, context: context)
                return
            }
            guard let head = parsed else {
                if buf.readableBytes > Self.maxHead {
                    writeRaw("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                             close: true, context: context)
                }
                return
            }
            let total = head.headLength + head.contentLength
            guard buf.readableBytes >= total else {
                if head.expectContinue && buf.readableBytes == head.headLength {
                    writeRaw("HTTP/1.1 100 Continue\r\n\r\n", close: false, context: context)
                }
                return
            }
            buf.moveReaderIndex(forwardBy: head.headLength)
            let body = buf.readBytes(length: head.contentLength) ?? []
            buffer = buf.readableBytes > 0 ? buf : nil
            answering = true
            let request = SimRequest(method: head.method, uri: head.uri, fields: head.fields, body: body)
            let response = service.handle(request, on: loop)
            switch response.fault {
            case .reset:
                closed = true
                if let provider = context.channel as? SocketOptionProvider {
                    provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                } else {
                    context.close(promise: nil)
                }
                return
            case .delay(let seconds):
                delayed.schedule(after: seconds) { self.answer(response, head: head, context: context) }
                return
            case nil:
                answer(response, head: head, context: context)
            }
        }
    }

    private func answer(_ response: SimResponse, head: Head, context: ChannelHandlerContext) {
        guard !closed, context.channel.isActive else { return }
        // The head is composed in `scratch`'s array and copied into the buffer once: two dozen small ByteBuffer writes
        // each checked capacity and exclusive access (1.3% of the simulator's instructions per request, cachegrind).
        // Each piece is copied as a buffer of bytes: `+= text.utf8` goes through the generic sequence copy. The array is
        // taken out of the property meanwhile: each append to a stored property of this class checked exclusive access
        // at run time (21 checks an answer, 2.4% of the simulator's instructions).
        var text: [UInt8] = []
        swap(&text, &scratch)
        text.removeAll(keepingCapacity: true)
        Self.append("HTTP/1.1 ", to: &text)
        Self.appendDecimal(response.status, to: &text)
        text.append(0x20)
        Self.append(Self.reason(response.status), to: &text)
        Self.append("\r\n", to: &text)
        for (name, value) in response.headers {
            Self.append(name, to: &text)
            Self.append(": ", to: &text)
            Self.append(value, to: &text)
            Self.append("\r\n", to: &text)
        }
        Self.append("content-length: ", to: &text)
        Self.appendDecimal(response.contentLengthOverride ?? response.body.count, to: &text)
        Self.append("\r\n", to: &text)
        if !head.keepAlive { Self.append("connection: close\r\n", to: &text) }
        Self.append("\r\n", to: &text)
        var out = context.channel.allocator.buffer(capacity: text.count + response.body.count)
        out.writeBytes(text)
        swap(&text, &scratch)  // back before anything below can answer the next request
        if head.method != "HEAD" { out.writeBytes(response.body) }
        answering = false
        if head.keepAlive {
            context.write(wrapOutboundOut(out), promise: nil)
            flushAtEndOfTick(context: context)
            processBuffered(context: context)
        } else {
            closed = true
            context.writeAndFlush(wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Answers are flushed once the event loop has read every ready connection, not one by one: a burst of writes
    /// wakes a waiting client once instead of once per answer (what Netty's FlushConsolidationHandler does). On
    /// loopback the wake-up of the reader costs as much as the write itself.
    private func flushAtEndOfTick(context: ChannelHandlerContext) {
        guard !flushPending else { return }
        flushPending = true
        context.eventLoop.assumeIsolated().execute {
            self.flushPending = false
            context.flush()
        }
    }

    private func writeRaw(_ text: String, close: Bool, context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: text.utf8.count)
        out.writeString(text)
        if close {
            closed = true
            context.writeAndFlush(wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
    }

    struct Malformed: Error {}

    /// Parses a request head if a complete one is buffered; nil when more bytes are needed.
    static func parseHead(_ p: UnsafeRawBufferPointer) throws -> Head? {
        let n = p.count
        guard n >= 4 else { return nil }
        // The blank line ending the head, and each line's end and separators, found with memchr.
        func find(_ byte: UInt8, in r: Range<Int>) -> Int? { ByteSearch.index(of: byte, in: p, r) }
        var end = -1
        var from = 3
        while let lf = find(0x0A, in: from..<n) {
            if p[lf - 1] == 0x0D && p[lf - 2] == 0x0A && p[lf - 3] == 0x0D { end = lf + 1; break }
            from = lf + 1
        }
        guard end > 0 else { return nil }
        func text(_ r: Range<Int>) -> String { String(decoding: UnsafeRawBufferPointer(rebasing: p[r]), as: UTF8.self) }
        func lineEnd(from start: Int) -> Int {
            var j = start
            while let cr = find(0x0D, in: j..<(end - 2)) {
                if p[cr + 1] == 0x0A { return cr }
                j = cr + 1
            }
            return end - 2
        }
        let requestLine = 0..<lineEnd(from: 0)
        guard let sp1 = find(0x20, in: requestLine),
              let sp2 = find(0x20, in: (sp1 + 1)..<requestLine.upperBound) else { throw Malformed() }
        let method = text(requestLine.lowerBound..<sp1)
        let uri = text((sp1 + 1)..<sp2)
        let version = UnsafeRawBufferPointer(rebasing: p[(sp2 + 1)..<requestLine.upperBound])
        let http11 = version.elementsEqual("HTTP/1.1".utf8)
        guard http11 || version.elementsEqual("HTTP/1.0".utf8) else { throw Malformed() }
        let linesStart = requestLine.upperBound + 2
        var fields = FieldsBuilder(lines: UnsafeRawBufferPointer(rebasing: p[min(linesStart, end)..<end]))
        var contentLength = 0
        var keepAlive = http11
        var expectContinue = false
        var start = linesStart
        while start < end - 2 {
            let line = start..<lineEnd(from: start)
            start = line.upperBound + 2
            guard let colon = find(0x3A, in: line) else { throw Malformed() }
            var vs = colon + 1
            var ve = line.upperBound
            while vs < ve, p[vs] == 0x20 || p[vs] == 0x09 { vs += 1 }
            while ve > vs, p[ve - 1] == 0x20 || p[ve - 1] == 0x09 { ve -= 1 }
            let name = fields.addField(name: (line.lowerBound - linesStart)..<(colon - linesStart),
                                       value: (vs - linesStart)..<(ve - linesStart))
            func lowercasedValue() -> String { text(vs..<ve).lowercased() }
            switch name.count {
            case 14 where name.equals("content-length"):
                guard let v = Int(text(vs..<ve)), v >= 0, v <= 64 << 20 else { throw Malformed() }
                contentLength = v
            case 10 where name.equals("connection"):
                let v = lowercasedValue()
                if v == "close" { keepAlive = false } else if v == "keep-alive" { keepAlive = true }
            case 6 where name.equals("expect"):
                expectContinue = lowercasedValue() == "100-continue"
            case 17 where name.equals("transfer-encoding"):
                throw Malformed()  // no client of the simulator sends chunked bodies
            default: break
            }
        }
        return Head(method: method, uri: uri, fields: fields, contentLength: contentLength, keepAlive: keepAlive,
                    expectContinue: expectContinue, headLength: end)
    }

    private static func append(_ text: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    private static func append(_ text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { out.append(contentsOf: $0) }
    }

    /// A non-negative number in decimal, without the String an interpolation would build.
    static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { d in
            var v = max(0, value)
            var i = d.count
            repeat {
                i -= 1
                d[i] = UInt8(0x30 + v % 10)
                v /= 10
            } while v > 0
            out += UnsafeRawBufferPointer(rebasing: d[i...])
        }
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 400: return "Bad Request"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }
}

/// Answers held back by the latency fault, grouped by the quarter millisecond they are due in: one timer per slot on
/// the event loop rather than one per answer, and the answers of one slot go out in one burst (flushed together).
/// A timer per answer made the loop wake for every answer, which at thousands a second cost the simulator more than the
/// requests themselves. The price is that latency is rounded up to the next slot: 125 µs on average (whole
/// milliseconds added half a millisecond, 1% of a 50 ms latency, to every benchmark cycle).
/// Touched only on its event loop, which is what makes `@unchecked Sendable` sound.
final class DelayedAnswers: @unchecked Sendable {
    static let slotNanoseconds: UInt64 = 250_000
    private let loop: EventLoop
    private var due: [UInt64: [() -> Void]] = [:]

    init(loop: EventLoop) { self.loop = loop }

    func schedule(after seconds: Double, _ body: @escaping () -> Void) {
        let at = NIODeadline.now().uptimeNanoseconds + UInt64(max(0, seconds) * 1e9)
        let slot = (at + Self.slotNanoseconds - 1) / Self.slotNanoseconds
        if due[slot] != nil {
            due[slot]!.append(body)
            return
        }
        due[slot] = [body]
        loop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(slot * Self.slotNanoseconds)) {
            for answer in self.due.removeValue(forKey: slot) ?? [] { answer() }
        }
    }
}
