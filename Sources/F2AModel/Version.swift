/// The one version of the library, the `f2a` and `f2a-train` tools and the
/// pkg-config file. The C header states it as F2A_VERSION_MAJOR/MINOR/PATCH
/// for C callers; Tests/capi checks that `f2a_version()` (this string) and the
/// macros agree, and the Makefile reads the macros for flash2ambient.pc.
public enum Flash2AmbientVersion {
    public static let string = "0.3.0"
}
