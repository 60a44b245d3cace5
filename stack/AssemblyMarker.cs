namespace UserTcp.Stack; internal static class AssemblyMarker { }
