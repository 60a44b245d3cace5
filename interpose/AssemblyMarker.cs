namespace UserTcp.Interpose; internal static class AssemblyMarker { }
