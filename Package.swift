// swift-tools-version:6.0
// reencryptd: bulk re-encryption of existing S3 objects through UpdateObjectEncryption.
// One target per concern; see README.md "Layout".
import PackageDescription

let package = Package(
    name: "reencryptd",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "reencryptd", targets: ["reencryptd"]),
        .executable(name: "s3sim", targets: ["s3sim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        // Thin C modules: a module map and a shim header of static inline wrappers (variadic or macro APIs).
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),

        // Domain vocabulary shared by every layer: jobs, tasks, states, outcome classes, object references.
        .target(name: "Domain"),
        // The job store: a protocol, and SQLite (WAL) behind it.
        .target(name: "JobStore", dependencies: ["Domain", "CSQLite", "COpenSSL"]),
        // Manifest readers: S3 Batch Operations CSV and S3 Inventory reports, streamed.
        .target(name: "Manifest", dependencies: ["Domain", "CZlib", "COpenSSL"]),
        // The S3 client: SigV4 signer (pure), credentials, requests, errors and classification, libcurl transport.
        .target(name: "S3", dependencies: ["Domain", "COpenSSL", "CZlib", "CCurl"]),
        // The S3 simulator: a strict local S3 on SwiftNIO for tests, the demo and benchmarks.
        .target(name: "S3Sim", dependencies: [
            "S3", "Domain", "Manifest", "CZlib",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        .executableTarget(name: "s3sim", dependencies: [
            "S3Sim", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The engine: claims, rate limits (token buckets, adaptive CUBIC), retries, outcomes, leases, shutdown.
        .target(name: "Engine", dependencies: [
            "Domain", "JobStore", "S3",
            .product(name: "DequeModule", package: "swift-collections"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Configuration: file (TOML) < environment < flags.
        .target(name: "Config", dependencies: [.product(name: "TOMLKit", package: "TOMLKit")]),
        // The command line: subcommands and wiring.
        .target(name: "ReencryptdCLI", dependencies: [
            "Domain", "JobStore", "Manifest", "Config", "S3", "Engine", "S3Sim",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "reencryptd", dependencies: ["ReencryptdCLI"]),
        // Benchmarks are programs, not tests (make bench).
        .executableTarget(name: "client-bench", dependencies: ["S3", "Domain"], path: "bench/ClientBench"),
        .executableTarget(name: "engine-bench", dependencies: [
            "Engine", "JobStore", "S3", "Domain", .product(name: "Logging", package: "swift-log"),
        ], path: "bench/EngineBench"),

        .testTarget(name: "JobStoreTests", dependencies: ["JobStore", "Domain", "CSQLite"]),
        .testTarget(name: "ManifestTests", dependencies: ["Manifest", "Domain", "JobStore"]),
        .testTarget(name: "ConfigTests", dependencies: ["Config"]),
        .testTarget(name: "S3Tests", dependencies: ["S3", "Domain"], exclude: ["Fixtures"]),
        .testTarget(name: "S3SimTests", dependencies: ["S3Sim", "S3", "Domain"], exclude: ["Fixtures"]),
        .testTarget(name: "EngineTests", dependencies: [
            "Engine", "JobStore", "S3", "S3Sim", "Domain", .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "CLITests", dependencies: ["ReencryptdCLI", "JobStore", "Domain", "S3Sim", "S3"]),
    ],
    swiftLanguageModes: [.v6]
)
