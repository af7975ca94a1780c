import CFlash2Ambient

/// The one version of the library, the `f2a` and `f2a-train` tools and the
/// pkg-config file: the header's F2A_VERSION_MAJOR/MINOR/PATCH, which
/// `f2a_version()` spells out too and the Makefile reads for flash2ambient.pc.
public enum Flash2AmbientVersion {
    public static let string = String(cString: f2a_version())
}
