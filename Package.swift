// swift-tools-version: 6.1
import PackageDescription

// Layout: one module per concern.
//   F2ACore        tensors, GEMM, layers (forward)
//   F2AModel       generator configuration, weights file format, generator forward pass
//   F2AImage       image I/O through libvips, quality metrics (PSNR, SSIM), and what both tools
//                  share: path rules, error text, numbers and durations as messages print them
//   CVipsConvert   photo <-> model pixels, shared by the f2a tools and the vips operation
//   Flash2Ambient  the C ABI (libflash2ambient.so), checked against include/flash2ambient.h
//   F2ASynth       synthetic flash/ambient pair renderer
//   F2ATrain       training: backward passes, losses, optimiser, data pipeline
//   F2ACLI         the `f2a` command-line tool
//   F2ATrainCLI    the `f2a-train` command-line tool
//   CToolStartup   start-up of both tools under an address-space limit (runs before main)
let package = Package(
    name: "flash2ambient",
    products: [
        .library(name: "flash2ambient", type: .dynamic, targets: ["Flash2Ambient"]),
        .executable(name: "f2a", targets: ["F2ACLI"]),
        .executable(name: "f2a-train", targets: ["F2ATrainCLI"]),
        .executable(name: "f2a-bench", targets: ["F2ABench"]),
        .executable(name: "f2a-fuzz-weights", targets: ["F2AFuzzWeights"]),
        .executable(name: "f2a-fuzz-capi", targets: ["F2AFuzzCAPI"]),
    ],
    dependencies: [
        // Pinned exactly: the build must not float to a newer release (Package.resolved is not
        // tracked: the project's checks keep it out of git).
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        // The photo <-> model pixel conversions, compiled into the f2a tools (through CVipsIO)
        // and into the vips operation (plugin/plugin.mk), so both convert alike.
        .target(name: "CVipsConvert",
                cSettings: [.unsafeFlags(["-I/usr/include/glib-2.0", "-I/usr/lib/x86_64-linux-gnu/glib-2.0/include"])],
                linkerSettings: [.linkedLibrary("vips"), .linkedLibrary("gobject-2.0"), .linkedLibrary("glib-2.0")]),
        .target(name: "CVipsIO", dependencies: ["CVipsConvert"],
                cSettings: [.unsafeFlags(["-I/usr/include/glib-2.0", "-I/usr/lib/x86_64-linux-gnu/glib-2.0/include"])],
                linkerSettings: [.linkedLibrary("vips"), .linkedLibrary("gobject-2.0"), .linkedLibrary("glib-2.0")]),
        .target(name: "CFlash2Ambient"),
        .target(name: "CToolStartup"),
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "F2ACore", dependencies: ["COpenBLAS", "CKernels"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .target(name: "F2AModel", dependencies: ["F2ACore", "CFlash2Ambient"]),
        .target(name: "F2AImage", dependencies: ["CVipsIO", "F2ACore"]),
        .target(name: "Flash2Ambient", dependencies: ["CFlash2Ambient", "F2AModel"],
                exclude: ["exports.map"],
                // lld: gold keeps the Swift modules' protected type descriptors in the dynamic
                // symbol table (as local symbols) even though the version script hides them.
                // Release only: in the debug fuzz build the version script would hide ASan's malloc.
                linkerSettings: [.unsafeFlags(["-use-ld=lld",
                                               "-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/Flash2Ambient/exports.map",
                                               "-Xlinker", "-soname=libflash2ambient.so.0"],
                                              .when(configuration: .release))]),
        .target(name: "F2ASynth", dependencies: ["F2ACore", "F2AImage"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .target(name: "F2ATrain", dependencies: ["F2ACore", "F2AModel", "F2AImage", "F2ASynth"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .executableTarget(name: "F2ATrainCLI", dependencies: [
            "F2ATrain", "F2AModel", "F2AImage", "CToolStartup",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "F2ACLI", dependencies: [
            "F2AModel", "F2AImage", "F2ASynth", "CToolStartup",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "F2ABench", dependencies: ["F2AModel"], path: "bench/F2ABench"),
        .target(name: "F2AFuzzReplay", path: "Tests/fuzz/FuzzReplay"),
        .executableTarget(name: "F2AFuzzWeights", dependencies: ["F2AModel", "F2AFuzzReplay"], path: "Tests/fuzz/FuzzWeights"),
        .executableTarget(name: "F2AFuzzCAPI", dependencies: ["Flash2Ambient", "CFlash2Ambient", "F2AFuzzReplay"], path: "Tests/fuzz/FuzzCAPI"),
        .testTarget(name: "F2ACoreTests", dependencies: ["F2ACore"]),
        .testTarget(name: "F2AModelTests", dependencies: ["F2AModel"]),
        .testTarget(name: "F2AImageTests", dependencies: ["F2AImage"], exclude: ["make_golden.py"]),
        .testTarget(name: "F2ATrainTests", dependencies: ["F2ATrain", "F2AModel"]),
        .testTarget(name: "F2ASynthTests", dependencies: ["F2ASynth"]),
        .testTarget(name: "ShippedModelTests", dependencies: ["F2AModel", "F2AImage"]),
    ]
)
