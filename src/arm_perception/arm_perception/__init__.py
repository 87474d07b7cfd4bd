"""Camera model, depth to organised point cloud, message and bag conversions, perception node."""
