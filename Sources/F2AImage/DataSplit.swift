/// The fixed split of the faid32 pair set (data/faid32-split.md), one owner for both tools:
/// f2a-train never trains on the validation names (its default `valNames`), and
/// `f2a eval --split validation|training` scores either side of the same split.
public enum DataSplit {
    /// The 6 faid32 validation pairs, one per FAID category.
    public static let faid32Validation = ["Objects_054", "People_220", "Plants_063", "Rooms_707", "Shelves_138", "Toys_224"]
}
