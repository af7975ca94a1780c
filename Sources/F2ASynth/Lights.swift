/// A spherical area light (lamp shade, ceiling fixture, window-sized glow).
/// Large radius → soft shadows. Irradiance on a surface facing it at
/// distance d is `intensity · blackBody(temperature) / d²` (linear units).
public struct AreaLight: Sendable, Codable {
    public var center: Vec3
    /// Radius, metres.
    public var radius: Float
    /// Radiant intensity (irradiance at 1 m), scalar.
    public var intensity: Float
    /// Colour temperature, kelvin.
    public var temperature: Float

    public init(center: Vec3, radius: Float, intensity: Float, temperature: Float) {
        self.center = center; self.radius = radius; self.intensity = intensity; self.temperature = temperature
    }

    var colour: Vec3 { ColourSpace.blackBody(kelvin: temperature) * intensity }
}

/// The ambient (non-flash) illumination: a few area lights plus a
/// hemispherical environment (light bounced around the room), the latter
/// attenuated by ambient occlusion.
public struct AmbientLighting: Sendable, Codable {
    public var lights: [AreaLight]
    /// Irradiance from the environment on an upward-facing surface.
    public var environmentIntensity: Float
    /// Environment colour temperature, kelvin.
    public var environmentTemperature: Float
    /// Irradiance on a downward-facing surface relative to upward (0–1).
    public var groundRatio: Float
    /// Ambient-occlusion search radius, metres (0 disables AO).
    public var occlusionRadius: Float

    public init(lights: [AreaLight], environmentIntensity: Float, environmentTemperature: Float = 4000,
                groundRatio: Float = 0.4, occlusionRadius: Float = 0.4) {
        self.lights = lights; self.environmentIntensity = environmentIntensity
        self.environmentTemperature = environmentTemperature; self.groundRatio = groundRatio
        self.occlusionRadius = occlusionRadius
    }

    /// No ambient light at all.
    public static let none = AmbientLighting(lights: [], environmentIntensity: 0, occlusionRadius: 0)
}

/// The flash: a point light on the camera body. Irradiance on a surface
/// facing it at distance d is `intensity · blackBody(temperature) / d²`
/// (inverse-square law, no angular falloff).
public struct FlashLight: Sendable, Codable {
    /// Position relative to the camera's centre of projection in camera space
    /// (x right, y up, z forward), metres. Phones: about 1 cm; pop-up flashes: 5–10 cm.
    public var offset: Vec3
    /// Radiant intensity (irradiance at 1 m), scalar.
    public var intensity: Float
    /// Colour temperature, kelvin (xenon/LED flashes ≈ 5500–7000 K).
    public var temperature: Float
    /// Flash light bounced by the room, as a fraction of the mean direct flash
    /// irradiance over the image, applied as uniform fill (times AO).
    public var bounce: Float
    /// Beam narrowness k: intensity at angle θ off the camera axis is scaled by
    /// cos²θ / (cos²θ + k·sin²θ) (0 = uniform; 1 ≈ −25% at 30°). Darkens the
    /// image corners like a real flash's limited coverage.
    public var beam: Float

    public init(offset: Vec3 = .zero, intensity: Float = 1, temperature: Float = 6000, bounce: Float = 0, beam: Float = 0) {
        self.offset = offset; self.intensity = intensity; self.temperature = temperature; self.bounce = bounce
        self.beam = beam
    }

    var colour: Vec3 { ColourSpace.blackBody(kelvin: temperature) * intensity }
}
